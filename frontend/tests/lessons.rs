//! Each built-in lesson is also a test: run with `--no-pause`, its trap log
//! and its console text must match the expected files checked in under
//! `tests/lessons/` (regenerate them with `RINGSIDE_BLESS=1 cargo test
//! --test lessons` after a deliberate change, and read the diff).

use std::path::PathBuf;
use std::process::Command;

const LESSONS: &[&str] = &["rings", "privileged", "holes", "v86", "paging", "hypercall"];

fn expected_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/lessons")
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringside"))
        // Headless even from a desktop session: the window's lesson runs
        // are tests/window.rs's business.
        .env_remove("DISPLAY")
        .args(args)
        .output()
        .expect("run ringside");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check(name: &str, what: &str, got: &str) {
    let path = expected_dir().join(format!("{name}.{what}"));
    if std::env::var_os("RINGSIDE_BLESS").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if want != got {
        let first = want
            .lines()
            .zip(got.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(got.lines().count()));
        panic!(
            "{name}.{what} differs from {} at line {}:\n  want: {:?}\n  got:  {:?}",
            path.display(),
            first + 1,
            want.lines().nth(first),
            got.lines().nth(first)
        );
    }
}

#[test]
fn lessons_match_their_expected_trap_logs_and_text() {
    let dir = std::env::temp_dir().join(format!("ringside-lessons-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in LESSONS {
        let log = dir.join(format!("{name}.log"));
        let (status, stdout, stderr) = run(&[
            "lesson",
            name,
            "--no-pause",
            "--trap-log",
            log.to_str().unwrap(),
        ]);
        assert_eq!(status, 0, "lesson {name}: {stderr}");
        check(name, "out", &stdout);
        check(name, "log", &std::fs::read_to_string(&log).unwrap());
    }
}

#[test]
fn lesson_list_names_every_lesson() {
    let (status, stdout, _) = run(&["lesson", "list"]);
    assert_eq!(status, 0);
    for name in LESSONS {
        assert!(stdout.lines().any(|l| l.starts_with(name)), "{stdout}");
    }
    let (status, _, stderr) = run(&["lesson", "nosuch"]);
    assert_eq!(status, 2);
    assert!(stderr.contains("no such lesson"), "{stderr}");
}

#[test]
fn holes_statistics_count_every_untrapped_sensitive_instruction() {
    let (status, _, stderr) = run(&[
        "lesson",
        "holes",
        "--no-pause",
        "--stats",
        "--trap-log-events",
        "sensitive",
    ]);
    assert_eq!(status, 0, "{stderr}");
    let count = |name: &str| -> u64 {
        stderr
            .lines()
            .skip_while(|l| !l.contains("without a trap"))
            .skip(1)
            .take_while(|l| l.starts_with("    "))
            .find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(name)).then(|| w.next().unwrap().parse().unwrap())
            })
            .unwrap_or(0)
    };
    for m in [
        "SGDT", "SIDT", "SLDT", "STR", "SMSW", "LAR", "LSL", "VERR", "VERW",
    ] {
        assert_eq!(count(m), 1, "{m} in:\n{stderr}");
    }
    // POPFD once, plus the PUSHFDs that show its effect.
    assert_eq!(count("POPFD"), 1, "{stderr}");
    assert!(count("PUSHFD") >= 3, "{stderr}");
    assert!(
        stderr.contains("privileged instructions trapped: none"),
        "{stderr}"
    );
}

#[test]
fn trap_log_on_a_run_goes_to_stderr_in_jsonl() {
    let (_, _, stderr) = run(&[
        "lesson",
        "privileged",
        "--no-pause",
        "--trap-log",
        "stderr",
        "--trap-log-format",
        "jsonl",
        "--trap-log-events",
        "trap",
        "--trap-log-cpl",
        "3",
    ]);
    let lines: Vec<_> = stderr.lines().filter(|l| l.starts_with('{')).collect();
    // Seventeen privileged instructions, IN 60h, INT 81h, RDTSC with TSD.
    assert_eq!(lines.len(), 20, "{stderr}");
    assert!(lines
        .iter()
        .all(|l| l.contains("\"kind\":\"trap\"") && l.contains("\"cpl\":3")));
}

#[test]
fn paging_statistics_count_faults_and_tlb_flushes() {
    let (status, _, stderr) = run(&["lesson", "paging", "--no-pause", "--stats"]);
    assert_eq!(status, 0, "{stderr}");
    assert!(stderr.contains("page faults: 4"), "{stderr}");
    assert!(stderr.contains("1 by INVLPG"), "{stderr}");
    assert!(
        stderr.contains("mode changes: 2, task switches: 0"),
        "{stderr}"
    );
}

#[test]
fn hypercall_lesson_trades_eighteen_traps_for_one_call() {
    let (status, stdout, stderr) = run(&["lesson", "hypercall", "--no-pause", "--stats"]);
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains("one trap per byte\n"), "{stdout}");
    assert!(
        stdout.contains("one hypercall for the whole line\n"),
        "{stdout}"
    );
    assert!(
        stderr.contains("0x0D #GP general protection           18"),
        "{stderr}"
    );
    assert!(
        stderr.contains("    OUT                      18"),
        "{stderr}"
    );
    assert!(
        stderr.contains("    0x82                                   1"),
        "{stderr}"
    );
}

/// The handout quotes trap-log lines; they must be the lines the lessons
/// really print (so the handout cannot drift from the program).
#[test]
fn handout_quotes_real_trap_log_lines() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = std::fs::read_to_string(root.join("docs/teaching.md")).unwrap();
    let mut logs = String::new();
    for name in LESSONS {
        logs.push_str(
            &std::fs::read_to_string(expected_dir().join(format!("{name}.log"))).unwrap(),
        );
    }
    let mut quoted = 0;
    for line in doc.lines() {
        let t = line.trim_start();
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        let looks_like_log = digits > 0
            && t[digits..].starts_with("  ")
            && t[digits + 2..].len() > 14
            && t.as_bytes()[digits + 6] == b':';
        if looks_like_log {
            quoted += 1;
            assert!(
                logs.contains(t),
                "docs/teaching.md quotes a line no lesson prints:\n{t}"
            );
        }
    }
    assert!(quoted >= 10, "only {quoted} quoted lines found");
}
