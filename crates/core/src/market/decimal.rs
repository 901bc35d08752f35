//! An exact decimal for feed prices and sizes: the feed's digits survive parse and print unchanged.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// Most fractional digits a [`Decimal`] keeps; more would risk overflowing the mantissa when scales are aligned.
pub const MAX_SCALE: u8 = 18;
/// Most significant digits a [`Decimal`] accepts (an `i128` holds 38; the rest is headroom for products).
pub const MAX_DIGITS: usize = 30;

/// Why a string is not a [`Decimal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Empty, or a sign with no digits.
    #[error("empty number")]
    Empty,
    /// A character other than digits, one leading `-` and one `.`.
    #[error("not a decimal number")]
    Invalid,
    /// More than [`MAX_SCALE`] fractional digits or [`MAX_DIGITS`] digits in all.
    #[error("too many digits")]
    TooLong,
}

/// An exact decimal `mantissa * 10^-scale`; equality, hashing and ordering are by numeric value
/// (`"1.50" == "1.5"`) so book levels are keyed exactly, while printing keeps the digits it was parsed from.
#[derive(Clone, Copy)]
pub struct Decimal {
    mantissa: i128,
    scale: u8,
}

impl Decimal {
    /// Zero with no fractional digits.
    pub const ZERO: Decimal = Decimal {
        mantissa: 0,
        scale: 0,
    };

    /// `mantissa * 10^-scale`; `scale` is capped at [`MAX_SCALE`] by the caller's contract.
    pub const fn new(mantissa: i128, scale: u8) -> Decimal {
        Decimal { mantissa, scale }
    }

    /// Parses `-?digits(.digits)?` exactly; no exponent, no `+`, no leading or trailing dot.
    pub fn parse(s: &str) -> Result<Decimal, DecimalError> {
        let b = s.as_bytes();
        let (neg, body) = match b.first() {
            Some(b'-') => (true, &b[1..]),
            _ => (false, b),
        };
        if body.is_empty() {
            return Err(DecimalError::Empty);
        }
        let mut mantissa: i128 = 0;
        let mut scale: u8 = 0;
        let mut digits = 0usize;
        let mut dot = false;
        let mut prev_digit = false;
        for &c in body {
            match c {
                b'0'..=b'9' => {
                    digits += 1;
                    if digits > MAX_DIGITS {
                        return Err(DecimalError::TooLong);
                    }
                    mantissa = mantissa * 10 + i128::from(c - b'0');
                    if dot {
                        if scale == MAX_SCALE {
                            return Err(DecimalError::TooLong);
                        }
                        scale += 1;
                    }
                    prev_digit = true;
                }
                b'.' if !dot && prev_digit => {
                    dot = true;
                    prev_digit = false;
                }
                _ => return Err(DecimalError::Invalid),
            }
        }
        if !prev_digit {
            // "1." or "-": a dot must be followed by digits.
            return Err(DecimalError::Invalid);
        }
        Ok(Decimal {
            mantissa: if neg { -mantissa } else { mantissa },
            scale,
        })
    }

    /// The unscaled integer.
    pub fn mantissa(self) -> i128 {
        self.mantissa
    }

    /// Number of fractional digits as parsed.
    pub fn scale(self) -> u8 {
        self.scale
    }

    /// True for any representation of zero (`"0"`, `"0.000"`).
    pub fn is_zero(self) -> bool {
        self.mantissa == 0
    }

    /// True below zero.
    pub fn is_negative(self) -> bool {
        self.mantissa < 0
    }

    /// Mantissa rescaled to `scale` (>= self.scale); `None` on overflow.
    fn at_scale(self, scale: u8) -> Option<i128> {
        10i128
            .checked_pow(u32::from(scale - self.scale))
            .and_then(|f| self.mantissa.checked_mul(f))
    }

    /// Exact sum at the larger scale; `None` on overflow.
    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale.max(other.scale);
        let m = self.at_scale(scale)?.checked_add(other.at_scale(scale)?)?;
        Some(Decimal { mantissa: m, scale })
    }

    /// Exact product; `None` on overflow or when the scale would pass [`MAX_SCALE`] * 2.
    pub fn checked_mul(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale.checked_add(other.scale)?;
        if scale > 2 * MAX_SCALE {
            return None;
        }
        let m = self.mantissa.checked_mul(other.mantissa)?;
        Some(Decimal { mantissa: m, scale })
    }

    /// `self / other` rounded half away from zero to `scale` fractional digits; `None` on a zero divisor
    /// or overflow. Integer arithmetic only, so the result is the same on every platform.
    pub fn checked_div_round(self, other: Decimal, scale: u8) -> Option<Decimal> {
        if other.mantissa == 0 {
            return None;
        }
        // self/other = (a*10^-sa)/(b*10^-sb); want q*10^-scale => q = a*10^(scale+sb-sa)/b.
        let exp = i32::from(scale) + i32::from(other.scale) - i32::from(self.scale);
        let (num, den) = if exp >= 0 {
            (
                self.mantissa.checked_mul(10i128.checked_pow(exp as u32)?)?,
                other.mantissa,
            )
        } else {
            (
                self.mantissa,
                other
                    .mantissa
                    .checked_mul(10i128.checked_pow((-exp) as u32)?)?,
            )
        };
        let q = num / den;
        let r = num % den;
        let round_up = r.unsigned_abs().checked_mul(2)? >= den.unsigned_abs();
        let q = if round_up {
            if (num < 0) != (den < 0) {
                q - 1
            } else {
                q + 1
            }
        } else {
            q
        };
        Some(Decimal { mantissa: q, scale })
    }

    /// Appends the decimal as parsed (same digits, same trailing zeros) to `out`.
    pub fn write(self, out: &mut Vec<u8>) {
        if self.mantissa < 0 {
            out.push(b'-');
        }
        let mut buf = itoa::Buffer::new();
        let digits = buf.format(self.mantissa.unsigned_abs()).as_bytes();
        let scale = usize::from(self.scale);
        if scale == 0 {
            out.extend_from_slice(digits);
        } else if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            out.extend_from_slice(int);
            out.push(b'.');
            out.extend_from_slice(frac);
        } else {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
            out.extend_from_slice(digits);
        }
    }

    /// Appends the checksum form Kraken specifies: the printed number with the `.` removed and leading
    /// zeros removed (`"0.00500"` -> `"500"`).
    pub fn write_checksum_digits(self, out: &mut Vec<u8>) {
        // Print in place, then compact the printed bytes: no temporary buffer on the ingest path.
        let start = out.len();
        self.write(out);
        let mut w = start;
        for r in start..out.len() {
            let c = out[r];
            if c == b'.' || (c == b'0' && w == start) {
                continue;
            }
            out[w] = c;
            w += 1;
        }
        out.truncate(w);
    }

    /// The value with trailing fractional zeros removed, used for comparing and hashing.
    fn normalized(self) -> (i128, u8) {
        let (mut m, mut s) = (self.mantissa, self.scale);
        while s > 0 && m % 10 == 0 {
            m /= 10;
            s -= 1;
        }
        (m, s)
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Decimal) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl Ord for Decimal {
    fn cmp(&self, other: &Decimal) -> Ordering {
        let scale = self.scale.max(other.scale);
        match (self.at_scale(scale), other.at_scale(scale)) {
            (Some(a), Some(b)) => a.cmp(&b),
            // Only reachable for products with many digits: compare integer parts, then the fractions
            // at a common scale (scales are capped at 2 * MAX_SCALE, so 10^scale fits an i128).
            _ => {
                let pa = 10i128.pow(u32::from(self.scale));
                let pb = 10i128.pow(u32::from(other.scale));
                (self.mantissa / pa)
                    .cmp(&(other.mantissa / pb))
                    .then_with(|| {
                        let fa = (self.mantissa % pa) * 10i128.pow(u32::from(scale - self.scale));
                        let fb = (other.mantissa % pb) * 10i128.pow(u32::from(scale - other.scale));
                        fa.cmp(&fb)
                    })
            }
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Decimal) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash for Decimal {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.normalized().hash(state);
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::with_capacity(48);
        self.write(&mut out);
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Decimal {
    type Err = DecimalError;
    fn from_str(s: &str) -> Result<Decimal, DecimalError> {
        Decimal::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prints_what_it_parsed() {
        for s in [
            "0",
            "1",
            "64000.5",
            "64000.50",
            "0.00000500",
            "-3.25",
            "120",
            "0.0",
        ] {
            assert_eq!(Decimal::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn rejects_non_decimals() {
        for s in [
            "", "-", "1.", ".5", "1e5", "+1", "1.2.3", "NaN", "1,5", " 1",
        ] {
            assert!(Decimal::parse(s).is_err(), "{s:?} accepted");
        }
        assert_eq!(
            Decimal::parse("0.0000000000000000001"),
            Err(DecimalError::TooLong)
        );
    }

    #[test]
    fn equal_values_compare_equal() {
        let a = Decimal::parse("1.50").unwrap();
        let b = Decimal::parse("1.5").unwrap();
        assert_eq!(a, b);
        assert!(Decimal::parse("1.499").unwrap() < b);
        assert!(Decimal::parse("-2").unwrap() < Decimal::parse("-1.99").unwrap());
    }

    #[test]
    fn checksum_digits_drop_dot_and_leading_zeros() {
        let d = |s| {
            let mut v = Vec::new();
            Decimal::parse(s).unwrap().write_checksum_digits(&mut v);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(d("0.05005"), "5005");
        assert_eq!(d("0.00000500"), "500");
        assert_eq!(d("45285.2"), "452852");
        assert_eq!(d("0.00100000"), "100000");
    }

    #[test]
    fn division_rounds_half_away_from_zero() {
        let p = |s| Decimal::parse(s).unwrap();
        assert_eq!(
            p("2").checked_div_round(p("3"), 4).unwrap().to_string(),
            "0.6667"
        );
        assert_eq!(
            p("1").checked_div_round(p("8"), 2).unwrap().to_string(),
            "0.13"
        );
        assert_eq!(
            p("-1").checked_div_round(p("8"), 2).unwrap().to_string(),
            "-0.13"
        );
        assert!(p("1").checked_div_round(p("0.0"), 2).is_none());
    }

    proptest! {
        #[test]
        fn roundtrip_and_order_match_integers(a in -10_000_000i64..10_000_000, sa in 0u8..8, b in -10_000_000i64..10_000_000, sb in 0u8..8) {
            let da = Decimal::new(a.into(), sa);
            let db = Decimal::new(b.into(), sb);
            prop_assert_eq!(Decimal::parse(&da.to_string()).unwrap().to_string(), da.to_string());
            // Compare exactly via a common scale of 10^8.
            let ia = i128::from(a) * 10i128.pow(u32::from(8 - sa));
            let ib = i128::from(b) * 10i128.pow(u32::from(8 - sb));
            prop_assert_eq!(da.cmp(&db), ia.cmp(&ib));
        }
    }
}
