//! Coinbase Exchange websocket feed, `ticker` channel: one message per match with best bid/ask,
//! last price and size, and a per-product `sequence`.
//!
//! `sequence` counts every message of the product's full order-book feed, so ticker messages skip
//! numbers by design: only a sequence going backwards is a discontinuity here.

use simd_json::prelude::*;

use super::{num, parse, string, uint, upstream_error, Adapter, Update, UpstreamSeq};
use crate::gaps::SeqMode;
use crate::reject::Reject;

/// The `ticker` channel.
#[derive(Debug, Default)]
pub struct Coinbase;

impl Adapter for Coinbase {
    fn subscribe(&self, symbols: &[String]) -> Vec<String> {
        let mut out = b"{\"type\":\"subscribe\",\"product_ids\":".to_vec();
        tickcast_core::json::write_str_array(&mut out, symbols);
        out.extend_from_slice(b",\"channels\":[\"ticker\"]}");
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
            Some("ticker") => {
                emit(Update {
                    channel: None,
                    symbol: string(&v, "product_id")?,
                    bid: num(&v, "best_bid")?,
                    ask: num(&v, "best_ask")?,
                    last: num(&v, "price")?,
                    size: num(&v, "last_size")?,
                    seq: uint(&v, "sequence")?.map(|value| UpstreamSeq {
                        stream: 0,
                        value,
                        mode: SeqMode::Increasing,
                    }),
                });
                Ok(())
            }
            Some("error") => {
                upstream_error(&v, "message");
                Ok(())
            }
            // subscriptions, heartbeat, status: nothing to publish.
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
    fn decodes_the_documented_ticker_message() {
        assert_eq!(
            Coinbase.subscribe(&["ETH-USD".into()]),
            vec![r#"{"type":"subscribe","product_ids":["ETH-USD"],"channels":["ticker"]}"#]
        );
        // The example of the Coinbase Exchange docs (websocket channels, ticker).
        let msg = r#"{"type":"ticker","sequence":37475248783,"product_id":"ETH-USD","price":"1285.22","open_24h":"1310.79","volume_24h":"245532.79269678","low_24h":"1280.52","high_24h":"1313.8","volume_30d":"9788783.60117027","best_bid":"1285.04","best_bid_size":"0.46688654","best_ask":"1285.27","best_ask_size":"1.56637040","side":"buy","time":"2022-10-19T23:28:22.061769Z","trade_id":370843401,"last_size":"11.4396987"}"#;
        let out = decode_all(&mut Coinbase, msg).unwrap();
        assert_eq!(
            out,
            vec![
                r#"Update { channel: None, symbol: "ETH-USD", bid: Some(1285.04), ask: Some(1285.27), last: Some(1285.22), size: Some(11.4396987), seq: Some(UpstreamSeq { stream: 0, value: 37475248783, mode: Increasing }) }"#
            ]
        );
        assert!(decode_all(
            &mut Coinbase,
            r#"{"type":"subscriptions","channels":[{"name":"ticker","product_ids":["ETH-USD"]}]}"#
        )
        .unwrap()
        .is_empty());
        assert!(decode_all(&mut Coinbase, r#"{"type":"heartbeat","sequence":90,"last_trade_id":20,"product_id":"BTC-USD","time":"2014-11-07T08:19:28.464459Z"}"#).unwrap().is_empty());
        assert_eq!(
            decode_all(
                &mut Coinbase,
                r#"{"type":"ticker","product_id":"ETH-USD","price":"x"}"#
            )
            .unwrap_err()
            .reason(),
            crate::reject::RejectReason::BadNumber
        );
    }
}
