//! CSV tick rows for replay files: a header naming the columns (`ts,topic,bid,ask,last,size[,seq]`
//! in any order, extra columns ignored), then one tick per row. Fields are plain (no quoting: topics
//! and numbers never contain commas).

use std::borrow::Cow;

use tickcast_core::{Price, Size};

use crate::parse::{validate_topic, TickLine};
use crate::publisher::Quote;
use crate::reject::Reject;

const COLUMNS: [&str; 7] = ["topic", "bid", "ask", "last", "size", "ts", "seq"];
/// The first five are required.
const REQUIRED: usize = 5;

/// Column positions from the header row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvHeader {
    /// Index of each of [`COLUMNS`] in a row, if present.
    pos: [Option<usize>; COLUMNS.len()],
}

impl CsvHeader {
    /// Reads the header row.
    pub fn parse(line: &[u8]) -> Result<CsvHeader, Reject> {
        let text = std::str::from_utf8(line)
            .map_err(|_| Reject::BadJson("the CSV header is not valid UTF-8".into()))?;
        let mut pos = [None; COLUMNS.len()];
        for (i, name) in text.split(',').enumerate() {
            if let Some(c) = COLUMNS.iter().position(|c| *c == name.trim()) {
                pos[c] = Some(i);
            }
        }
        if let Some(missing) = (0..REQUIRED).find(|c| pos[*c].is_none()) {
            return Err(Reject::MissingField(COLUMNS[missing]));
        }
        Ok(CsvHeader { pos })
    }

    /// Reads one data row.
    pub fn row<'a>(&self, line: &'a [u8]) -> Result<TickLine<'a>, Reject> {
        let text = std::str::from_utf8(line)
            .map_err(|_| Reject::BadJson("the CSV row is not valid UTF-8".into()))?;
        let mut fields: [Option<&str>; COLUMNS.len()] = [None; COLUMNS.len()];
        for (i, value) in text.split(',').enumerate() {
            if let Some(c) = self.pos.iter().position(|p| *p == Some(i)) {
                fields[c] = Some(value.trim());
            }
        }
        let field = |c: usize| match fields[c] {
            Some(v) if !v.is_empty() => Ok(Some(v)),
            _ if c < REQUIRED => Err(Reject::MissingField(COLUMNS[c])),
            _ => Ok(None),
        };
        let num = |c: usize| -> Result<f64, Reject> {
            let v = field(c)?.unwrap_or_default();
            v.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or(Reject::BadNumber(COLUMNS[c]))
        };
        let int = |c: usize| -> Result<Option<u64>, Reject> {
            field(c)?
                .map(|v| v.parse::<u64>().map_err(|_| Reject::BadNumber(COLUMNS[c])))
                .transpose()
        };
        let topic = field(0)?.unwrap_or_default();
        validate_topic(topic)?;
        let size = num(4)?;
        if size < 0.0 {
            return Err(Reject::BadNumber("size"));
        }
        Ok(TickLine {
            topic: Cow::Borrowed(topic),
            quote: Quote {
                bid: Price(num(1)?),
                ask: Price(num(2)?),
                last: Price(num(3)?),
                size: Size(size),
            },
            ts: int(5)?,
            seq: int(6)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reject::RejectReason;

    #[test]
    fn maps_columns_by_header() {
        let h = CsvHeader::parse(b"ts,topic,bid,ask,last,size,venue").unwrap();
        let t = h
            .row(b"1763700000000000,ticker.AAPL,189.12,189.14,189.13,200,XNAS")
            .unwrap();
        assert_eq!(t.topic, "ticker.AAPL");
        assert_eq!(t.quote.bid, Price(189.12));
        assert_eq!(t.ts, Some(1_763_700_000_000_000));
        assert_eq!(t.seq, None);
    }

    #[test]
    fn bad_rows_and_headers_have_reasons() {
        assert_eq!(
            CsvHeader::parse(b"ts,topic,bid").unwrap_err().reason(),
            RejectReason::MissingField
        );
        let h = CsvHeader::parse(b"topic,bid,ask,last,size,seq").unwrap();
        let r = |s: &str| h.row(s.as_bytes()).unwrap_err().reason();
        assert_eq!(r("ticker.A,1,2,3"), RejectReason::MissingField);
        assert_eq!(r("ticker.A,x,2,3,4"), RejectReason::BadNumber);
        assert_eq!(r("A,1,2,3,4"), RejectReason::BadTopic);
        assert_eq!(r("ticker.A,1,2,3,4,-1"), RejectReason::BadNumber);
        assert_eq!(h.row(b"ticker.A,1,2,3,4,9").unwrap().seq, Some(9));
    }
}
