//! `sockkit knock` driven through the real binary over loopback: whole conversations, wrong
//! answers at each step, CRLF, pipelining, long lines, binary junk, fifty clients at once,
//! `--jokes` files good and bad, and interop with a Java client and server written in the
//! style of the Java sockets tutorial (tests/java/). Every wait has a deadline. Process
//! plumbing comes from tests/util; the knock client and the rendezvous below are this file's.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sockkit::service::jokes::Jokes;
use util::{ChildGuard, LineTap, Server, T, TempDir, peer_or_skip, run, run_cmd, sockkit};

// ---------------------------------------------------------------------------------------
// helpers

/// Starts `sockkit knock 127.0.0.1 0 EXTRA...` (stdin and stdout at /dev/null: knock uses
/// neither) and waits for its `listening on` line.
fn knock(extra: &[&str]) -> Server {
    let mut args = vec!["knock", "127.0.0.1", "0"];
    args.extend(extra);
    Server::start_with(sockkit(&args).stdin(Stdio::null()).stdout(Stdio::null()))
}

/// What the knock tests ask of a running server.
trait KnockServer {
    fn client(&self) -> Client;
    fn wait_log(&mut self, words: &[&str]) -> String;
    fn assert_alive(&mut self);
}

impl KnockServer for Server {
    fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Waits until a stderr line (any so far, in any order) contains every one of `words`;
    /// returns that line.
    fn wait_log(&mut self, words: &[&str]) -> String {
        self.stderr
            .wait_seen(T, |l| words.iter().all(|w| l.contains(w)))
            .unwrap_or_else(|e| panic!("no stderr line with {words:?}: {e}"))
    }

    /// The server process is still running (a bad client did not take it down).
    fn assert_alive(&mut self) {
        assert!(
            self.child.try_status().is_none(),
            "server exited; stderr:\n{}",
            self.stderr.text()
        );
    }
}

/// One TCP client with line reads, every read bounded by `T`.
struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect_timeout(&addr, T).expect("connect");
        s.set_read_timeout(Some(T)).unwrap();
        s.set_write_timeout(Some(T)).unwrap();
        Client {
            writer: s.try_clone().unwrap(),
            reader: BufReader::new(s),
        }
    }

    fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.writer.write_all(bytes.as_ref()).expect("send");
    }

    /// The next line from the server, without its LF; fails on EOF or timeout.
    fn line(&mut self) -> String {
        let mut buf = Vec::new();
        let n = self
            .reader
            .read_until(b'\n', &mut buf)
            .expect("read a line");
        assert!(n > 0, "server closed while a line was expected");
        assert_eq!(buf.pop(), Some(b'\n'), "unterminated line {buf:?}");
        String::from_utf8(buf).expect("server lines are UTF-8")
    }

    fn expect(&mut self, want: &str) {
        assert_eq!(self.line(), want);
    }

    /// Sends `answer` + LF and returns the reply line.
    fn ask(&mut self, answer: &str) -> String {
        self.send(format!("{answer}\n"));
        self.line()
    }

    /// Everything until the server closes (a reset after a drop counts as closing).
    fn rest(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        match self.reader.read_to_end(&mut all) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("waiting for the server to close: {e} (got {all:?})"),
        }
        all
    }

    /// What the server said before it closed, which must be an orderly close (EOF), not a
    /// reset: every server ends a client with a lingering close so its last line arrives.
    fn told_then_eof(&mut self) -> String {
        let mut all = Vec::new();
        if let Err(e) = self.reader.read_to_end(&mut all) {
            panic!(
                "the server's close was not orderly: {e} (got {:?})",
                String::from_utf8_lossy(&all)
            );
        }
        String::from_utf8(all).expect("server lines are UTF-8")
    }

    fn assert_closed(&mut self) {
        let rest = self.rest();
        assert!(
            rest.is_empty(),
            "expected close, got {:?}",
            String::from_utf8_lossy(&rest)
        );
    }

    /// One whole joke from the knock: returns the punchline line.
    fn joke(&mut self, clue: &str) -> String {
        assert_eq!(self.ask("Who's there?"), clue);
        self.ask(&format!("{clue} who?"))
    }
}

/// A meeting point for threads that fails (instead of hanging) when one never arrives.
struct Rendezvous {
    count: Mutex<usize>,
    cv: Condvar,
    parties: usize,
}

impl Rendezvous {
    fn new(parties: usize) -> Rendezvous {
        Rendezvous {
            count: Mutex::new(0),
            cv: Condvar::new(),
            parties,
        }
    }

    /// Arrives at meeting `round` (1, 2, ...) and waits for every party to arrive there.
    fn meet(&self, round: usize) {
        let target = self.parties * round;
        let mut n = self.count.lock().unwrap();
        *n += 1;
        self.cv.notify_all();
        let (n, timeout) = self.cv.wait_timeout_while(n, T, |n| *n < target).unwrap();
        assert!(
            !timeout.timed_out(),
            "only {}/{target} arrived at round {round}",
            *n
        );
    }
}

fn builtin() -> Jokes {
    Jokes::builtin()
}

// ---------------------------------------------------------------------------------------
// conversations

#[test]
fn a_whole_conversation_two_jokes_then_bye() {
    let mut server = knock(&["-v"]);
    let jokes = builtin();
    let mut c = server.client();
    c.expect("Knock! Knock!");
    let first = jokes.get(0);
    assert_eq!(
        c.joke(&first.clue),
        format!("{} Want another? (y/n)", first.punchline)
    );
    assert_eq!(c.ask("y"), "Knock! Knock!");
    let second = jokes.get(1);
    assert_eq!(
        c.joke(&second.clue),
        format!("{} Want another? (y/n)", second.punchline)
    );
    assert_eq!(c.ask("n"), "Bye.");
    c.assert_closed();

    // -v tells the story: joining, each joke, leaving.
    server.wait_log(&["knock:", "joins"]);
    server.wait_log(&["heard joke 1", &format!("{:?}", first.clue)]);
    server.wait_log(&["heard joke 2", "2 told"]);
    server.wait_log(&["leaves after 2 jokes", "said goodbye"]);
}

#[test]
fn wrong_answers_at_each_step_restart_at_the_knock() {
    let mut server = knock(&[]);
    let clue = builtin().get(0).clue.clone();
    let mut c = server.client();
    c.expect("Knock! Knock!");

    // At the knock.
    let r = c.ask("Who is it?");
    assert!(r.contains("\"Who's there?\""), "{r}");
    assert!(r.ends_with("Knock! Knock!"), "{r}");

    // At the clue: the same joke starts over.
    assert_eq!(c.ask("Who's there?"), clue);
    let r = c.ask("Banana who?");
    assert!(r.contains(&format!("\"{clue} who?\"")), "{r}");
    assert!(r.ends_with("Knock! Knock!"), "{r}");
    assert_eq!(c.ask("Who's there?"), clue);

    // At the offer: anything but y is goodbye.
    assert!(
        c.ask(&format!("{clue} who?"))
            .ends_with("Want another? (y/n)")
    );
    assert_eq!(c.ask("maybe later"), "Bye.");
    c.assert_closed();
    server.assert_alive();
}

#[test]
fn crlf_case_and_spaces_are_accepted() {
    let server = knock(&[]);
    let j = builtin();
    let mut c = server.client();
    c.expect("Knock! Knock!");
    c.send("  wHo'S tHeRe?  \r\n");
    c.expect(&j.get(0).clue);
    c.send(format!("{} WHO?\r\n", j.get(0).clue.to_uppercase()));
    assert!(c.line().starts_with(&j.get(0).punchline));
    c.send(" Y\r\n");
    c.expect("Knock! Knock!");
    c.send("Who's there?\r\n");
    c.expect(&j.get(1).clue);
}

#[test]
fn pipelined_input_is_answered_in_order() {
    let server = knock(&[]);
    let j = builtin();
    let (a, b) = (j.get(0), j.get(1));
    let mut c = server.client();
    // Everything at once, before reading a byte; the lines after `n` are never answered.
    c.send(format!(
        "Who's there?\n{} who?\ny\nwrong\nWho's there?\n{} who?\nn\nWho's there?\n",
        a.clue, b.clue
    ));
    let all = String::from_utf8(c.rest()).unwrap();
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 8, "{all}");
    assert_eq!(lines[0], "Knock! Knock!");
    assert_eq!(lines[1], a.clue);
    assert_eq!(lines[2], format!("{} Want another? (y/n)", a.punchline));
    assert_eq!(lines[3], "Knock! Knock!");
    assert!(lines[4].contains("\"Who's there?\"") && lines[4].ends_with("Knock! Knock!"));
    assert_eq!(lines[5], b.clue);
    assert_eq!(lines[6], format!("{} Want another? (y/n)", b.punchline));
    assert_eq!(lines[7], "Bye.");
}

/// What a client that sends a line over 1 KiB is told before the server closes.
const TOO_LONG: &str = "That line is over 1024 bytes; an answer takes a few words. Bye.\n";

/// Issue 16 item 7: a 2,000-byte line got no word, and a 100 kB one got a reset that could
/// destroy even the greeting. Sent before reading anything, the client still gets the
/// greeting, the reason, and an orderly EOF.
#[test]
fn a_2000_byte_or_100_kb_line_gets_the_greeting_the_reason_and_eof_not_a_reset() {
    let server = knock(&[]);
    for len in [2_000, 100_000] {
        let mut c = server.client();
        c.send(format!("{}\n", "z".repeat(len)));
        assert_eq!(
            c.told_then_eof(),
            format!("Knock! Knock!\n{TOO_LONG}"),
            "{len} bytes"
        );
    }
}

#[test]
fn too_many_wrong_answers_get_the_reason_then_eof_even_with_more_input_queued() {
    let server = knock(&[]);
    let mut c = server.client();
    c.expect("Knock! Knock!");
    // Sixteen wrong answers and more behind them, all at once.
    c.send("nope\n".repeat(40));
    let said = c.told_then_eof();
    let last = said.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("That's 16 wrong answers in a row") && last.ends_with("Bye."),
        "{said}"
    );
    assert_eq!(said.lines().count(), 16, "{said}");
}

#[test]
fn a_client_over_max_conns_is_told_the_server_is_full_then_eof() {
    let mut server = knock(&["--max-conns", "1"]);
    let mut first = server.client();
    first.expect("Knock! Knock!");
    let mut second = server.client();
    assert_eq!(
        second.told_then_eof(),
        "Sorry, I'm telling jokes to 1 person already (--max-conns 1); try again later. Bye.\n"
    );
    server.wait_log(&["refused", "--max-conns 1 reached"]);
    // The first is served as ever.
    assert_eq!(first.ask("Who's there?"), builtin().get(0).clue);
}

#[test]
fn a_stopping_server_tells_its_clients_then_closes_in_order() {
    let mut server = knock(&[]);
    let mut c = server.client();
    c.expect("Knock! Knock!");
    assert_eq!(c.ask("Who's there?"), builtin().get(0).clue);
    // SAFETY: kill() on our own child's PID.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    assert_eq!(
        c.told_then_eof(),
        "The server is stopping: no more jokes today. Bye.\n"
    );
    drop(c);
    let status = server.child.status_within(T, "knock after SIGTERM");
    // Every subcommand ends by the signal that stopped it (EXIT STATUS).
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
}

#[test]
fn a_line_over_1_kib_ends_that_client_only() {
    let mut server = knock(&["-v"]);
    let mut c = server.client();
    c.expect("Knock! Knock!");
    // 1024 bytes is still a line (a wrong answer)...
    let r = c.ask(&"a".repeat(1024));
    assert!(r.ends_with("Knock! Knock!"), "{r}");
    // ...1025 is not: the client is told, then the server closes (EOF, not a reset).
    c.send(format!("{}\n", "b".repeat(1025)));
    assert_eq!(c.told_then_eof(), TOO_LONG);
    server.wait_log(&["longer than 1024"]);

    // Without a newline at all: dropped once the bound is passed, not buffered forever.
    let mut c = server.client();
    c.expect("Knock! Knock!");
    let _ = c.writer.write_all(&vec![b'x'; 64 * 1024]);
    assert_eq!(c.told_then_eof(), TOO_LONG);

    server.assert_alive();
    let mut c = server.client();
    c.expect("Knock! Knock!");
    assert_eq!(c.ask("Who's there?"), builtin().get(0).clue);
}

#[test]
fn binary_junk_is_a_wrong_answer_not_a_crash() {
    let mut server = knock(&[]);
    let mut c = server.client();
    c.expect("Knock! Knock!");
    c.send(b"\x00\xff\xfe\x01\x7f junk \xc3\x28\n");
    let r = c.line();
    assert!(
        r.contains("\"Who's there?\"") && r.ends_with("Knock! Knock!"),
        "{r}"
    );
    c.send(b"Who's there?\x00\n");
    assert!(c.line().ends_with("Knock! Knock!"));
    assert_eq!(c.ask("Who's there?"), builtin().get(0).clue);
    // At the offer, junk is a no.
    c.ask(&format!("{} who?", builtin().get(0).clue));
    c.send(b"\xff\n");
    c.expect("Bye.");
    c.assert_closed();
    server.assert_alive();
}

#[test]
fn a_client_that_hangs_up_mid_joke_gets_its_answer_and_others_carry_on() {
    let mut server = knock(&["-v"]);
    let j = builtin();
    let mut other = server.client();
    other.expect("Knock! Knock!");

    let mut c = server.client();
    c.expect("Knock! Knock!");
    c.send("Who's there?"); // no LF: the half-close ends the line
    c.writer.shutdown(Shutdown::Write).unwrap();
    c.expect(&j.get(0).clue);
    c.assert_closed();
    server.wait_log(&["leaves after 0 jokes", "hung up"]);

    // An abrupt disconnect mid-joke, too.
    let mut c = server.client();
    c.expect("Knock! Knock!");
    c.send("Who's there?\n");
    drop(c);

    assert!(other.joke(&j.get(0).clue).ends_with("(y/n)"));
    server.assert_alive();
}

#[test]
fn a_silent_client_is_closed_after_the_idle_timeout() {
    let server = knock(&["--idle-timeout", "300ms"]);
    let mut c = server.client();
    let t0 = Instant::now();
    c.expect("Knock! Knock!");
    assert_eq!(
        c.told_then_eof(),
        "You've been quiet for 300ms; I'll save my jokes for later. Bye.\n"
    );
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(250), "closed after {took:?}");
}

#[test]
fn fifty_clients_at_once_each_at_its_own_point() {
    const N: usize = 50;
    let mut server = knock(&[]);
    let jokes = Arc::new(builtin());
    let meet = Rendezvous::new(N);
    let addr = server.addr;
    thread::scope(|s| {
        for i in 0..N {
            let jokes = Arc::clone(&jokes);
            let meet = &meet;
            s.spawn(move || {
                let mut c = Client::connect(addr);
                c.expect("Knock! Knock!");
                meet.meet(1); // all fifty connected at once

                // Client i tells i % 4 whole jokes, then stops at a point of its own.
                let done = i % 4;
                for k in 0..done {
                    let j = jokes.get(k);
                    assert_eq!(
                        c.joke(&j.clue),
                        format!("{} Want another? (y/n)", j.punchline)
                    );
                    assert_eq!(c.ask("y"), "Knock! Knock!");
                }
                let j = jokes.get(done);
                match i % 3 {
                    0 => {}
                    1 => assert_eq!(c.ask("Who's there?"), j.clue),
                    _ => {
                        assert!(c.ask("wrong").ends_with("Knock! Knock!"));
                    }
                }
                meet.meet(2); // all fifty open, mid-conversation, at different points

                if i % 3 != 1 {
                    assert_eq!(c.ask("Who's there?"), j.clue);
                }
                assert_eq!(
                    c.ask(&format!("{} who?", j.clue)),
                    format!("{} Want another? (y/n)", j.punchline),
                    "client {i}"
                );
                assert_eq!(c.ask("n"), "Bye.");
                c.assert_closed();
            });
        }
    });
    server.assert_alive();
}

// ---------------------------------------------------------------------------------------
// --jokes and --shuffle

#[test]
fn jokes_file_is_told_in_order() {
    let dir = TempDir::new("knock-good");
    let file = dir.file(
        "mine.tsv",
        "# my jokes\n\nTea\tTea for two, and two for TCP.\r\nOwl\tOwl be listening.\n",
    );
    let server = knock(&["--jokes", file.to_str().unwrap()]);
    let mut c = server.client();
    c.expect("Knock! Knock!");
    assert_eq!(
        c.joke("Tea"),
        "Tea for two, and two for TCP. Want another? (y/n)"
    );
    c.ask("y");
    assert_eq!(c.joke("Owl"), "Owl be listening. Want another? (y/n)");
    c.ask("y");
    assert_eq!(c.ask("Who's there?"), "Tea", "the set starts over");
}

#[test]
fn a_malformed_jokes_file_is_refused_at_start_with_its_line() {
    let dir = TempDir::new("knock-bad");
    let file = dir.file(
        "bad.tsv",
        "# ok so far\nTea\tTea for two\nno tab on this line\n",
    );
    let out = run_cmd(
        sockkit(&["knock", "127.0.0.1", "0", "--jokes"]).arg(&file),
        b"",
        T,
    );
    let stderr = &out.stderr;
    assert_eq!(out.code(), Some(2), "{stderr}");
    assert_eq!(out.stdout_text(), "");
    assert!(!stderr.contains("listening on"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("sockkit: reading jokes from "),
        "{stderr}"
    );
    assert!(stderr.contains("bad.tsv: line 3: no TAB"), "{stderr}");

    let out = run_cmd(
        sockkit(&["knock", "127.0.0.1", "0", "--jokes"]).arg(dir.path("none.tsv")),
        b"",
        T,
    );
    let stderr = &out.stderr;
    assert_eq!(out.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("none.tsv") && !stderr.contains("listening on"),
        "{stderr}"
    );
}

#[test]
fn shuffle_tells_every_joke_once_per_round() {
    let dir = TempDir::new("knock-shuffle");
    let names = ["Ada", "Bit", "Cache", "Daemon", "Echo"];
    let text: String = names.iter().map(|n| format!("{n}\t{n} punch\n")).collect();
    let file = dir.file("five.tsv", &text);
    let server = knock(&["--jokes", file.to_str().unwrap(), "--shuffle"]);
    let mut c = server.client();
    c.expect("Knock! Knock!");
    let mut heard = Vec::new();
    for _ in 0..names.len() {
        let clue = c.ask("Who's there?");
        assert_eq!(
            c.ask(&format!("{clue} who?")),
            format!("{clue} punch Want another? (y/n)")
        );
        c.ask("y");
        heard.push(clue);
    }
    heard.sort();
    assert_eq!(heard, names);
}

// ---------------------------------------------------------------------------------------
// interop with the Java tutorial's programs

/// A directory with tests/java/*.java compiled into it, or None (after saying why) when this
/// machine has no JDK; with CI set a missing JDK fails the test instead.
fn java_classes() -> Option<TempDir> {
    let javac = peer_or_skip("javac")?;
    peer_or_skip("java")?;
    let dir = TempDir::new("knock-java");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java");
    let sources: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "java"))
        .collect();
    // Longer than T: a cold JVM compiling on two busy cores.
    let out = run_cmd(
        Command::new(javac).arg("-d").arg(dir.root()).args(&sources),
        b"",
        Duration::from_mins(2),
    );
    assert!(out.status.success(), "javac failed: {}", out.stderr);
    Some(dir)
}

/// Starts a Java server class on port 0 and reads the port it prints.
fn java_server(classes: &Path, class: &str) -> (ChildGuard, u16) {
    let mut child = ChildGuard::spawn(
        Command::new("java")
            .arg("-cp")
            .arg(classes)
            .args([class, "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    );
    // Longer than T: JVM start-up on two busy cores.
    let line = LineTap::new(child.stdout())
        .wait_for(Duration::from_mins(1), |_| true)
        .unwrap_or_else(|e| panic!("the Java server to print its port: {e}"));
    let port = line
        .trim()
        .strip_prefix("listening on port ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from {class}: {line:?}"));
    (child, port)
}

#[test]
fn java_tutorial_client_completes_a_conversation_with_sockkit() {
    let Some(classes) = java_classes() else {
        return;
    };
    let jokes = classes.file(
        "jokes.tsv",
        "Tea\tTea for two, and two for TCP.\nOwl\tOwl be listening.\n",
    );
    let script = classes.file(
        "answers.txt",
        "who's there?\nTea who?\ny\nWho is it?\nWho's there?\nOwl who?\nn\n",
    );
    let server = knock(&["--jokes", jokes.to_str().unwrap()]);
    let out = run_cmd(
        Command::new("java")
            .arg("-cp")
            .arg(classes.root())
            .arg("KnockKnockClient")
            .arg("127.0.0.1")
            .arg(server.addr.port().to_string())
            .arg(&script),
        b"",
        Duration::from_mins(1),
    );
    assert!(out.status.success(), "{}", out.stderr);
    let expected = "\
Server: Knock! Knock!
Client: who's there?
Server: Tea
Client: Tea who?
Server: Tea for two, and two for TCP. Want another? (y/n)
Client: y
Server: Knock! Knock!
Client: Who is it?
Server: That's not it: when someone knocks, you say \"Who's there?\". Let's try again. Knock! Knock!
Client: Who's there?
Server: Owl
Client: Owl who?
Server: Owl be listening. Want another? (y/n)
Client: n
Server: Bye.
(server closed)
";
    assert_eq!(out.stdout_text(), expected);
}

#[test]
fn sockkit_connect_completes_a_conversation_with_java_servers() {
    let Some(classes) = java_classes() else {
        return;
    };
    let answers = "Who's there?\nJava who?\ny\nWho's there?\nThread who?\nn\n";
    let expected = "\
Knock! Knock!
Java
Java nice day, the socket is open! Want another? (y/n)
Knock! Knock!
Thread
Thread carefully: this server starts one per client. Want another? (y/n)
Bye.
";
    // The tutorial's one-client server: it closes after "Bye." and exits.
    let (mut java, port) = java_server(classes.root(), "KnockKnockServer");
    let out = run(
        &["connect", "127.0.0.1", &port.to_string()],
        answers.as_bytes(),
        T,
    );
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(out.stdout_text(), expected);
    java.status_within(T, "KnockKnockServer did not exit after Bye.");

    // The tutorial's many-client server, two sockkit clients at once.
    let (_java, port) = java_server(classes.root(), "KKMultiServer");
    let port = port.to_string();
    thread::scope(|s| {
        let a = s.spawn(|| run(&["connect", "127.0.0.1", &port], answers.as_bytes(), T));
        let b = s.spawn(|| run(&["connect", "127.0.0.1", &port], answers.as_bytes(), T));
        for h in [a, b] {
            let out = h.join().unwrap();
            assert!(out.status.success(), "{}", out.stderr);
            assert_eq!(out.stdout_text(), expected);
        }
    });
}
