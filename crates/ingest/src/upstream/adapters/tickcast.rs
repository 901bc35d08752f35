//! Another tickcast as upstream (protocol v1): subscribe to topics, take `tick` messages.

use simd_json::prelude::*;

use super::{num, parse, string, uint, upstream_error, Adapter, Update, UpstreamSeq};
use crate::gaps::SeqMode;
use crate::reject::Reject;

/// Protocol v1 client side.
#[derive(Debug, Default)]
pub struct Tickcast;

impl Adapter for Tickcast {
    fn subscribe(&self, symbols: &[String]) -> Vec<String> {
        let mut out = b"{\"op\":\"subscribe\",\"topics\":".to_vec();
        tickcast_core::json::write_str_array(&mut out, symbols);
        out.extend_from_slice(b",\"id\":1}");
        vec![String::from_utf8_lossy(&out).into_owned()]
    }

    fn decode(
        &mut self,
        msg: &mut [u8],
        buffers: &mut simd_json::Buffers,
        emit: &mut dyn FnMut(Update<'_>),
    ) -> Result<(), Reject> {
        let v = parse(msg, buffers)?;
        match v.get("type").and_then(|t| t.as_str()) {
            Some("tick") => {
                let topic = string(&v, "topic")?;
                let (channel, symbol) = topic
                    .split_once('.')
                    .ok_or_else(|| Reject::BadTopic(topic.chars().take(80).collect()))?;
                let required = |k: &'static str| num(&v, k)?.ok_or(Reject::MissingField(k));
                emit(Update {
                    channel: Some(channel),
                    symbol,
                    bid: Some(required("bid")?),
                    ask: Some(required("ask")?),
                    last: Some(required("last")?),
                    size: Some(required("size")?),
                    seq: uint(&v, "seq")?.map(|value| UpstreamSeq {
                        stream: 0,
                        value,
                        mode: SeqMode::Contiguous,
                    }),
                });
                Ok(())
            }
            Some("error") => {
                upstream_error(&v, "message");
                Ok(())
            }
            Some(_) => Ok(()),
            None => Err(Reject::MissingField("type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode_all;
    use super::*;

    #[test]
    fn subscribes_and_decodes_ticks() {
        assert_eq!(
            Tickcast.subscribe(&["ticker.AAPL".into(), "ticker.MSFT".into()]),
            vec![r#"{"op":"subscribe","topics":["ticker.AAPL","ticker.MSFT"],"id":1}"#]
        );
        let out = decode_all(
            &mut Tickcast,
            r#"{"type":"tick","topic":"ticker.AAPL","seq":123,"ts":1763700000000000,"bid":189.12,"ask":189.14,"last":189.13,"size":200}"#,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert!(
            out[0].contains(r#"channel: Some("ticker"), symbol: "AAPL", bid: Some(189.12)"#),
            "{}",
            out[0]
        );
        assert!(
            out[0].contains("value: 123, mode: Contiguous"),
            "{}",
            out[0]
        );
        assert!(
            decode_all(&mut Tickcast, r#"{"type":"subscribed","topics":[],"id":1}"#)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            decode_all(
                &mut Tickcast,
                r#"{"type":"tick","topic":"ticker.A","bid":1}"#
            )
            .unwrap_err()
            .reason(),
            crate::reject::RejectReason::MissingField
        );
    }
}
