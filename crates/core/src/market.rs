//! Market data beyond the ticker: exact decimals, L2 books with Kraken's checksum, trades and bars.
//!
//! Everything here is pure: the ingester builds each book and bar once with these types and the encoders
//! turn them into the `book`, `trade` and `bar` messages. No `f64` touches a price or size.

pub mod bar;
pub mod book;
pub mod crc32;
pub mod decimal;
pub mod encode;

pub use bar::{Bar, BarBuilder, BarSpec, TradeOutcome};
pub use book::{Book, BookError, Level, Side};
pub use decimal::{Decimal, DecimalError};
pub use encode::Trade;
