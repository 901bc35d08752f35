//! `[nats]`: the NATS sink of an ingest node (`server.role = "ingest"`). Defaults are the sink's
//! own ([`NatsSinkConfig::default`]); the section is checked only when the role uses it.

use std::time::Duration;

use serde::Deserialize;
use tickcast_ingest::nats::election::LeaseTiming;
use tickcast_ingest::nats::sink::{
    default_node_name, NatsSinkConfig, StreamStorage, BOOK_SNAPSHOT_EVERY_RANGE, MIN_HISTORY_AGE,
};

use super::{millis, ConfigError};

/// Where JetStream keeps the last-value stream, as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageSpec {
    /// On disk: survives a NATS restart.
    File,
    /// In memory: lost when NATS restarts (the sink recreates the stream, empty).
    Memory,
}

/// `[nats]`: the sink of an ingest node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsSection {
    /// `nats://host:port` (comma-separated for several servers).
    pub url: String,
    /// Subjects are `<subject_prefix>.<topic>`.
    pub subject_prefix: String,
    /// JetStream stream holding the last tick per subject (created if missing).
    pub stream: String,
    /// `file` or `memory`.
    pub stream_storage: StorageSpec,
    /// How long the history stream keeps every tick, in milliseconds (0 = no history stream): a
    /// gateway that starts or reconnects late fills its history from it.
    pub history_ms: u64,
    /// Most bytes the history stream holds (oldest ticks dropped first).
    pub history_max_bytes: u64,
    /// Ticks queued for NATS before new ones are dropped (and counted).
    pub queue_capacity: usize,
    /// Time allowed to connect at startup, in milliseconds.
    pub connect_timeout_ms: u64,
    /// How often the leader appends a snapshot of each book it updated, in milliseconds: the
    /// longest a gateway's copy of a book that lost sync goes unserved.
    pub book_snapshot_ms: u64,
    /// How often the leading ingest node appends its heartbeat (its lease), in milliseconds.
    pub renew_ms: u64,
    /// Silence after which a standby ingest node takes over, in milliseconds (>= 3 x renew_ms).
    pub lease_ms: u64,
    /// This node's name in heartbeats and logs; empty = `<hostname>-<pid>`.
    pub node: String,
}

impl Default for NatsSection {
    fn default() -> Self {
        let s = NatsSinkConfig::default();
        Self {
            url: s.url,
            subject_prefix: s.subject_prefix,
            stream: s.stream,
            stream_storage: match s.storage {
                StreamStorage::File => StorageSpec::File,
                StreamStorage::Memory => StorageSpec::Memory,
            },
            history_ms: millis(s.history_age),
            history_max_bytes: s.history_max_bytes,
            queue_capacity: s.queue_capacity,
            connect_timeout_ms: millis(s.connect_timeout),
            book_snapshot_ms: millis(s.book_snapshot_every),
            renew_ms: millis(s.lease.renew),
            lease_ms: millis(s.lease.lease),
            node: String::new(),
        }
    }
}

impl NatsSection {
    /// Checks the section (for the ingest role).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.url.trim().is_empty() {
            return Err(ConfigError::Invalid(
                "nats.url must be set for server.role = \"ingest\"".into(),
            ));
        }
        tickcast_ingest::nats::validate_names(&self.subject_prefix, &self.stream)
            .map_err(|e| ConfigError::Invalid(format!("nats.{e}")))?;
        let min_connect = millis(tickcast_ingest::nats::MIN_CONNECT_TIMEOUT);
        if self.queue_capacity == 0 || self.connect_timeout_ms < min_connect {
            return Err(ConfigError::Invalid(format!(
                "nats.queue_capacity must be >= 1 and connect_timeout_ms >= {min_connect}"
            )));
        }
        let min_history = millis(MIN_HISTORY_AGE);
        if self.history_ms != 0 && self.history_ms < min_history {
            return Err(ConfigError::Invalid(format!(
                "nats.history_ms is {}, must be 0 (no history stream) or >= {min_history}",
                self.history_ms
            )));
        }
        if self.history_max_bytes < 1 << 20 {
            return Err(ConfigError::Invalid(format!(
                "nats.history_max_bytes is {}, must be >= 1048576",
                self.history_max_bytes
            )));
        }
        let (lo, hi) = BOOK_SNAPSHOT_EVERY_RANGE;
        if !(millis(lo)..=millis(hi)).contains(&self.book_snapshot_ms) {
            return Err(ConfigError::Invalid(format!(
                "nats.book_snapshot_ms is {}, must be {}..={}",
                self.book_snapshot_ms,
                millis(lo),
                millis(hi)
            )));
        }
        self.lease()
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("nats.{e}")))?;
        Ok(())
    }

    fn lease(&self) -> LeaseTiming {
        LeaseTiming {
            renew: Duration::from_millis(self.renew_ms),
            lease: Duration::from_millis(self.lease_ms),
        }
    }

    /// The checked sink settings.
    pub fn sink(self) -> Result<NatsSinkConfig, ConfigError> {
        self.validate()?;
        let lease = self.lease();
        Ok(NatsSinkConfig {
            url: self.url,
            subject_prefix: self.subject_prefix,
            stream: self.stream,
            storage: match self.stream_storage {
                StorageSpec::File => StreamStorage::File,
                StorageSpec::Memory => StreamStorage::Memory,
            },
            history_age: Duration::from_millis(self.history_ms),
            history_max_bytes: self.history_max_bytes,
            queue_capacity: self.queue_capacity,
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            book_snapshot_every: Duration::from_millis(self.book_snapshot_ms),
            lease,
            node: if self.node.trim().is_empty() {
                default_node_name()
            } else {
                self.node
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_sink_is_configured_and_checked_for_the_ingest_role_only() {
        let resolve = |toml: &str| Config::from_toml(toml).and_then(Config::resolve);
        let bad_prefix = "[nats]\nsubject_prefix = \"a b\"\n";
        assert!(
            resolve(bad_prefix).unwrap().nats_sink.is_none(),
            "standalone"
        );
        let ingest = "[server]\nrole = \"ingest\"\n";
        match resolve(&format!("{ingest}{bad_prefix}")) {
            Err(ConfigError::Invalid(m)) => assert!(m.contains("nats.subject_prefix"), "{m}"),
            other => panic!("{other:?}"),
        }
        match resolve(&format!("{ingest}[nats]\nrenew_ms = 500\nlease_ms = 1000")) {
            Err(ConfigError::Invalid(m)) => assert!(m.contains("nats.lease_ms"), "{m}"),
            other => panic!("expected the lease refused, got {other:?}"),
        }
        match resolve(&format!("{ingest}[nats]\nurl = \" \"")) {
            Err(ConfigError::Invalid(m)) => assert!(m.contains("nats.url must be set"), "{m}"),
            other => panic!("{other:?}"),
        }
        match resolve(&format!("{ingest}[nats]\nhistory_ms = 10")) {
            Err(ConfigError::Invalid(m)) => assert!(m.contains("nats.history_ms is 10"), "{m}"),
            other => panic!("{other:?}"),
        }
        match resolve(&format!("{ingest}[nats]\nbook_snapshot_ms = 10")) {
            Err(ConfigError::Invalid(m)) => assert!(m.contains("nats.book_snapshot_ms"), "{m}"),
            other => panic!("{other:?}"),
        }
        match resolve(&format!("{ingest}[nats]\nhistory_max_bytes = 10")) {
            Err(ConfigError::Invalid(m)) => assert!(m.contains("nats.history_max_bytes"), "{m}"),
            other => panic!("{other:?}"),
        }
        let sink = resolve(&format!(
            "{ingest}[nats]\nstream_storage = \"memory\"\nhistory_ms = 60000"
        ))
        .unwrap()
        .nats_sink
        .expect("ingest role");
        assert_eq!(sink.storage, StreamStorage::Memory);
        assert_eq!(sink.history_age, Duration::from_secs(60));
        assert_eq!(sink.history_max_bytes, 256 << 20);
        assert_eq!(sink.url, tickcast_ingest::nats::DEFAULT_URL);
        assert_eq!(sink.connect_timeout, Duration::from_millis(5000));
    }
}
