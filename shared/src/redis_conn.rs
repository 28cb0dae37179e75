//! Redis connections with timeouts chosen for Runeflow, not the crate defaults
//! (a 500 ms response timeout turns a busy Redis into errors; no timeout at
//! all turns a dead one into a hang).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long one Redis reply may take before the call fails.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long establishing a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Opens a reconnecting connection to `url` (its `/N` database is honoured by
/// the redis crate's URL parser). Fails when Redis cannot be reached now.
pub async fn connect(url: &str) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_with_config(client, config).await
}
