//! HOST's addresses for `forward`, looked up off the event loops. getaddrinfo blocks (a slow
//! DNS server takes seconds), and a loop that waits for it stalls every pair it serves, so
//! one thread of its own does the lookups and the loops read its latest answer, which never
//! blocks. A client arriving when that answer is older than `FRESH` asks for a new one and is
//! served with the one at hand: HOST is still looked up again as clients come (its addresses
//! may change while forward runs), at most once per `FRESH`. An IP literal needs no lookup and
//! gets no thread. The names `forward --socks5` clients ask for go the same way (`Names`).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use std::io::{Read, Write};

use mio::{Interest, Registry, Token};

use crate::addr::{self, Family};

/// How old an answer may be before a new client asks for another.
const FRESH: Duration = Duration::from_secs(5);

/// The latest answer, and whether a loop has asked for a newer one.
struct State {
    answer: Result<Vec<SocketAddr>, String>,
    at: Instant,
    wanted: bool,
}

/// The shared answer; its thread lives as long as the process (forward ends with it).
pub struct Lookup {
    state: Mutex<State>,
    ask: Condvar,
}

impl Lookup {
    /// Starts with `first`, the answer cmd got when it checked HOST before listening; when
    /// HOST is a name, starts the thread that refreshes it.
    pub fn start(host: &str, port: u16, family: Family, first: Vec<SocketAddr>) -> Arc<Lookup> {
        let lookup = Arc::new(Lookup {
            state: Mutex::new(State {
                answer: Ok(first),
                at: Instant::now(),
                wanted: false,
            }),
            ask: Condvar::new(),
        });
        let literal = addr::unbracket(host).parse::<std::net::IpAddr>().is_ok();
        if !literal {
            let shared = Arc::clone(&lookup);
            let name = host.to_string();
            let spawned = std::thread::Builder::new()
                .name("sockkit-lookup".into())
                .spawn(move || shared.refresh_forever(&name, port, family));
            if spawned.is_err() {
                // Without the thread the first answer stays in use: still correct, only
                // not refreshed.
                crate::narrate::info(format_args!(
                    "could not start the lookup thread: {host} keeps the addresses it had at start"
                ));
            }
        }
        lookup
    }

    /// The addresses to try for a new client, at once; asks for a fresher answer when this
    /// one is older than `FRESH`.
    pub fn current(&self) -> Result<Vec<SocketAddr>, String> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.at.elapsed() >= FRESH && !st.wanted {
            st.wanted = true;
            self.ask.notify_one();
        }
        st.answer.clone()
    }

    fn refresh_forever(&self, host: &str, port: u16, family: Family) {
        loop {
            {
                let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                while !st.wanted {
                    st = self.ask.wait(st).unwrap_or_else(PoisonError::into_inner);
                }
            }
            // Outside the lock: the loops go on reading the old answer meanwhile.
            let answer = addr::resolve(host, port, family).map_err(|e| format!("{e:#}"));
            let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            st.answer = answer;
            st.at = Instant::now();
            st.wanted = false;
        }
    }
}

/// The names `forward --socks5` clients ask for, looked up off the loop: one thread per loop
/// that needs it, answering through a socket pair the loop polls like a client (a loop has
/// one mio Waker, and the lanes own it), so a slow lookup holds up only the clients still
/// waiting for a name, never the pairs already moving bytes.
pub struct Names {
    ask: mpsc::Sender<(Token, String, u16, Family)>,
    answers: mpsc::Receiver<(Token, Result<Vec<SocketAddr>, String>)>,
    bell: mio::net::UnixStream,
}

impl Names {
    /// Starts the lookup thread; its answers make `registry`'s loop see `token` readable.
    pub fn start(registry: &Registry, token: Token) -> io::Result<Names> {
        let (rx, tx) = std::os::unix::net::UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        let mut bell = mio::net::UnixStream::from_std(rx);
        registry.register(&mut bell, token, Interest::READABLE)?;
        let (ask, asked) = mpsc::channel::<(Token, String, u16, Family)>();
        let (answer, answers) = mpsc::channel();
        std::thread::Builder::new()
            .name("sockkit-names".into())
            .spawn(move || {
                // Ends when the loop goes (its sender with it).
                for (who, host, port, family) in asked {
                    let got = addr::resolve(&host, port, family).map_err(|e| format!("{e:#}"));
                    if answer.send((who, got)).is_err() {
                        break;
                    }
                    // The answer is queued before the byte, so the loop finds it.
                    let _ = (&tx).write(b"!");
                }
            })?;
        Ok(Names { ask, answers, bell })
    }

    /// Asks for `host`'s addresses on behalf of the pair with token `who`.
    pub fn ask(&self, who: Token, host: &str, port: u16, family: Family) -> bool {
        self.ask.send((who, host.to_string(), port, family)).is_ok()
    }

    /// The answers that have come, for the loop to hand to their pairs.
    pub fn answered(&self) -> Vec<(Token, Result<Vec<SocketAddr>, String>)> {
        let mut buf = [0u8; 64];
        // Edge-triggered: empty the socket, or the next answer would ring no bell.
        while matches!((&self.bell).read(&mut buf), Ok(n) if n > 0) {}
        self.answers.try_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_literal_is_its_own_answer_and_a_name_is_looked_up_again_when_stale() {
        let first: Vec<SocketAddr> = vec!["127.0.0.1:9".parse().unwrap()];
        let l = Lookup::start("127.0.0.1", 9, Family::Any, first.clone());
        assert_eq!(l.current(), Ok(first.clone()));

        // A name: an answer older than FRESH is replaced by the thread's, and reading never
        // waits for it.
        let stale = vec!["127.0.0.2:9".parse().unwrap()];
        let l = Lookup::start("localhost", 9, Family::V4, stale.clone());
        l.state.lock().unwrap().at = Instant::now().checked_sub(FRESH * 2).unwrap();
        assert_eq!(l.current(), Ok(stale), "the answer at hand, at once");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = l.current().unwrap();
            if now
                .iter()
                .all(|a| a.ip().is_loopback() && a.ip().to_string() == "127.0.0.1")
            {
                break;
            }
            assert!(Instant::now() < deadline, "never refreshed: {now:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_name_asked_of_the_thread_rings_the_loop_and_is_answered() {
        let mut poll = mio::Poll::new().unwrap();
        let names = Names::start(poll.registry(), Token(7)).unwrap();
        assert!(
            names.ask(Token(42), "localhost", 80, Family::V4),
            "asking never waits"
        );
        let mut events = mio::Events::with_capacity(4);
        let deadline = Instant::now() + Duration::from_secs(10);
        let answers = loop {
            poll.poll(&mut events, Some(Duration::from_millis(100)))
                .unwrap();
            if events.iter().any(|e| e.token() == Token(7)) {
                let a = names.answered();
                if !a.is_empty() {
                    break a;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the lookup thread never answered"
            );
        };
        assert_eq!(answers.len(), 1);
        let (who, got) = &answers[0];
        assert_eq!(*who, Token(42));
        assert!(
            got.as_ref().unwrap().iter().any(|a| a.ip().is_loopback()),
            "{got:?}"
        );
    }
}
