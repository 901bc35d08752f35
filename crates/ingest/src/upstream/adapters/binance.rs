//! Binance spot streams: `<symbol>@bookTicker` (best bid/ask, update id `u`) and `<symbol>@trade`
//! (price, quantity, trade id `t`), raw or wrapped as a combined stream (`{"stream":…,"data":…}`).
//!
//! Trade ids are dense per symbol, so a jump is a loss; book update ids are shared with the depth
//! stream and only increase.

use simd_json::prelude::*;
use simd_json::BorrowedValue;

use super::{num, parse, string, uint, upstream_error, Adapter, Update, UpstreamSeq};
use crate::gaps::SeqMode;
use crate::reject::Reject;

/// Stream id of book updates in [`UpstreamSeq::stream`].
const BOOK: u8 = 0;
/// Stream id of trades.
const TRADES: u8 = 1;

/// `bookTicker` + `trade`.
#[derive(Debug, Default)]
pub struct Binance;

impl Adapter for Binance {
    fn subscribe(&self, symbols: &[String]) -> Vec<String> {
        let mut out = b"{\"method\":\"SUBSCRIBE\",\"params\":[".to_vec();
        for (i, s) in symbols.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let s = s.to_ascii_lowercase();
            tickcast_core::json::write_str(&mut out, &format!("{s}@bookTicker"));
            out.push(b',');
            tickcast_core::json::write_str(&mut out, &format!("{s}@trade"));
        }
        out.extend_from_slice(b"],\"id\":1}");
        vec![String::from_utf8_lossy(&out).into_owned()]
    }

    fn decode(
        &mut self,
        msg: &mut [u8],
        buffers: &mut simd_json::Buffers,
        emit: &mut dyn FnMut(Update<'_>),
    ) -> Result<(), Reject> {
        let v = parse(msg, buffers)?;
        let data: &BorrowedValue<'_> = v.get("data").unwrap_or(&v);
        if data.get("result").is_some() && data.get("id").is_some() {
            return Ok(()); // subscription ack
        }
        if data.get("code").is_some() && data.get("msg").is_some() {
            upstream_error(data, "msg");
            return Ok(());
        }
        let event = data.get("e").and_then(|e| e.as_str());
        if event == Some("trade") {
            emit(Update {
                channel: None,
                symbol: string(data, "s")?,
                last: Some(num(data, "p")?.ok_or(Reject::MissingField("p"))?),
                size: Some(num(data, "q")?.ok_or(Reject::MissingField("q"))?),
                seq: uint(data, "t")?.map(|value| UpstreamSeq {
                    stream: TRADES,
                    value,
                    mode: SeqMode::Contiguous,
                }),
                ..Default::default()
            });
            return Ok(());
        }
        if data.get("u").is_some() && data.get("b").is_some() && data.get("a").is_some() {
            emit(Update {
                channel: None,
                symbol: string(data, "s")?,
                bid: num(data, "b")?,
                ask: num(data, "a")?,
                seq: uint(data, "u")?.map(|value| UpstreamSeq {
                    stream: BOOK,
                    value,
                    mode: SeqMode::Increasing,
                }),
                ..Default::default()
            });
            return Ok(());
        }
        Err(Reject::Unsupported("not a bookTicker or trade message"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode_all;
    use super::*;

    #[test]
    fn decodes_documented_book_ticker_and_trade_messages() {
        assert_eq!(
            Binance.subscribe(&["BNBUSDT".into()]),
            vec![
                r#"{"method":"SUBSCRIBE","params":["bnbusdt@bookTicker","bnbusdt@trade"],"id":1}"#
            ]
        );
        // Examples of the Binance spot WebSocket streams docs.
        let book = r#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#;
        assert_eq!(
            decode_all(&mut Binance, book).unwrap(),
            vec![
                r#"Update { channel: None, symbol: "BNBUSDT", bid: Some(25.3519), ask: Some(25.3652), last: None, size: None, seq: Some(UpstreamSeq { stream: 0, value: 400900217, mode: Increasing }) }"#
            ]
        );
        let trade = r#"{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}"#;
        assert_eq!(
            decode_all(&mut Binance, trade).unwrap(),
            vec![
                r#"Update { channel: None, symbol: "BNBBTC", bid: None, ask: None, last: Some(0.001), size: Some(100.0), seq: Some(UpstreamSeq { stream: 1, value: 12345, mode: Contiguous }) }"#
            ]
        );
        // Combined-stream wrapper and the subscription ack.
        let wrapped = format!(r#"{{"stream":"bnbusdt@bookTicker","data":{book}}}"#);
        assert_eq!(decode_all(&mut Binance, &wrapped).unwrap().len(), 1);
        assert!(decode_all(&mut Binance, r#"{"result":null,"id":1}"#)
            .unwrap()
            .is_empty());
        assert_eq!(
            decode_all(&mut Binance, r#"{"e":"kline"}"#)
                .unwrap_err()
                .reason(),
            crate::reject::RejectReason::Unsupported
        );
    }
}
