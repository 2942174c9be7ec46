//! `sockkit completions SHELL`: every shell's script is generated, parses in its shell
//! (`bash -n`, `zsh -n`, `fish -n`; zsh and fish are .ci/run's), and really completes: bash's
//! completion function, driven through COMP_WORDS as bash itself would on TAB, and fish's
//! `complete -C` both offer the option table's names after `-o`.

mod util;

use std::fs;
use std::process::Command;

use util::{T, TempDir, peer_or_skip, run, run_cmd};

const SHELLS: &[&str] = &["bash", "zsh", "fish", "elvish", "powershell"];

/// The script for `shell`, checked to be a clean run: exit 0, something on stdout, nothing on
/// stderr.
fn script(shell: &str) -> Vec<u8> {
    let out = run(&["completions", shell], b"", T);
    assert_eq!(out.code(), Some(0), "{shell}: {}", out.stderr);
    assert!(out.stderr.is_empty(), "{shell}: stderr {}", out.stderr);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sockkit"),
        "{shell}: no script"
    );
    out.stdout
}

/// Writes the script for `shell` into `dir` and returns its path.
fn script_file(dir: &TempDir, shell: &str) -> String {
    let path = dir.root().join(format!("sockkit.{shell}"));
    fs::write(&path, script(shell)).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn every_shell_gets_a_script() {
    for shell in SHELLS {
        script(shell);
    }
}

#[test]
fn scripts_parse_in_their_shells() {
    let dir = TempDir::new("completions-parse");
    for shell in ["bash", "zsh", "fish"] {
        let Some(program) = peer_or_skip(shell) else {
            continue;
        };
        let file = script_file(&dir, shell);
        let out = run_cmd(Command::new(program).args(["-n", &file]), b"", T);
        assert_eq!(out.code(), Some(0), "{shell} -n: {}", out.stderr);
        assert!(out.stderr.is_empty(), "{shell} -n: {}", out.stderr);
    }
}

/// What bash's completion for sockkit offers for the words of `line` (the last one being
/// completed), found as bash finds it: `complete -p sockkit` names the function, called with
/// COMP_WORDS/COMP_CWORD/COMP_LINE/COMP_POINT set and the command, current and previous word
/// as arguments. One candidate per line.
fn bash_completes(file: &str, line: &str) -> Vec<String> {
    let Some(bash) = peer_or_skip("bash") else {
        return Vec::new();
    };
    let body = r#"
        source "$1"
        spec=$(complete -p sockkit) || exit 3
        fn=${spec##*-F }; fn=${fn%% *}
        read -ra COMP_WORDS <<< "$2"
        case "$2" in *' ') COMP_WORDS+=("") ;; esac
        COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
        COMP_LINE=$2; COMP_POINT=${#COMP_LINE}
        prev=""; (( COMP_CWORD > 0 )) && prev=${COMP_WORDS[COMP_CWORD-1]}
        "$fn" sockkit "${COMP_WORDS[COMP_CWORD]}" "$prev"
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let out = run_cmd(
        Command::new(bash).args(["-c", body, "complete", file, line]),
        b"",
        T,
    );
    assert_eq!(
        out.code(),
        Some(0),
        "bash completion of {line:?}: {}",
        out.stderr
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_socket_option_names_after_o() {
    let dir = TempDir::new("completions-bash");
    if peer_or_skip("bash").is_none() {
        return;
    }
    let file = script_file(&dir, "bash");
    let offered = bash_completes(&file, "sockkit connect -o rcv");
    assert!(offered.iter().any(|c| c == "rcvbuf"), "offered {offered:?}");
    assert!(
        offered.iter().all(|c| c.starts_with("rcv")),
        "only matching names: {offered:?}"
    );
    // The same on a server, and the long spelling of the kernel name.
    let offered = bash_completes(&file, "sockkit listen -o so_rcvb");
    assert_eq!(offered, ["so_rcvbuf"]);
    // Subcommands and the shells themselves complete too.
    let offered = bash_completes(&file, "sockkit con");
    assert_eq!(offered, ["connect"]);
    let offered = bash_completes(&file, "sockkit completions z");
    assert_eq!(offered, ["zsh"]);
}

#[test]
fn fish_completes_socket_option_names_after_o() {
    let Some(fish) = peer_or_skip("fish") else {
        return;
    };
    let dir = TempDir::new("completions-fish");
    let file = script_file(&dir, "fish");
    let body = r#"source $argv[1]; complete -C "sockkit connect -o rcv""#;
    let out = run_cmd(Command::new(fish).args(["-c", body, &file]), b"", T);
    assert_eq!(out.code(), Some(0), "fish: {}", out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // fish prints `candidate<TAB>description`.
    assert!(
        stdout
            .lines()
            .any(|l| l.split('\t').next() == Some("rcvbuf")),
        "offered {stdout}"
    );
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = run(&["completions", "tcsh"], b"", T);
    assert_eq!(out.code(), Some(2));
    assert!(out.stdout.is_empty());
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].starts_with("sockkit: ") && lines[0].contains("tcsh"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_reader_that_goes_away_is_no_panic() {
    let mut child = util::ChildGuard::spawn(&mut util::sockkit(&["completions", "zsh"]));
    // Close our end before the script is written: the write gets EPIPE.
    drop(child.stdout());
    let mut stderr = child.stderr();
    let status = child.status_within(T, "completions into a closed pipe");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.code(), Some(0), "{err}");
}
