//! Free TCP ports on 127.0.0.1.
//!
//! The kernel hands out a free port for a bind to port 0; we release it for the component to
//! bind. Ports handed out by this process are remembered so two clusters started at once never
//! receive the same one (the kernel may return a just-released port again).

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, OnceLock};

use crate::error::TestEnvError;

static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();

/// A port on 127.0.0.1 that was free a moment ago and was never handed out by this process.
pub fn free_port() -> Result<u16, TestEnvError> {
    let handed_out = HANDED_OUT.get_or_init(Mutex::default);
    // Hold the listeners until a fresh port is found, so the kernel cannot return one of them.
    let mut held = Vec::new();
    loop {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(TestEnvError::NoFreePort)?;
        let port = listener
            .local_addr()
            .map_err(TestEnvError::NoFreePort)?
            .port();
        let mut seen = handed_out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.insert(port) {
            return Ok(port);
        }
        drop(seen);
        held.push(listener);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = (0..200).map(|_| free_port().unwrap()).collect();
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len());
        for port in ports {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
        }
    }
}
