//! The debugger's REPL (`--debug`) and script runner (`--debug-script`).
//! The command language itself is `ringside_machine::debugger::commands`;
//! this file reads lines (rustyline: history, completion) and prints.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{anyhow, Result};
use ringside_machine::debugger::commands::{Reply, COMMANDS};
use ringside_machine::debugger::{view, Debugger, StopCause};
use ringside_machine::Machine;
use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Editor, Helper};

/// The prompt, also echoed before each script command.
const PROMPT: &str = "(ringside) ";

/// Words completed after a command.
const INFO_WORDS: &[&str] = &[
    "gdt", "idt", "ldt", "tss", "ivt", "pic", "pit", "tlb", "mode", "break",
];

/// Completion of command names and `info`/`catch`/`watch`/`trace`/`log`
/// arguments.
struct Completion;

impl Completer for Completion {
    type Candidate = String;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let before = &line[..pos];
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = &before[start..];
        let first = before.split_whitespace().next().unwrap_or("");
        let pool: Vec<&str> = if start == 0 {
            COMMANDS.iter().map(|(n, _, _)| *n).collect()
        } else {
            match first {
                "info" => INFO_WORDS.to_vec(),
                "catch" => vec!["vector", "ring", "mode", "task", "port"],
                "watch" => vec!["r", "w", "rw"],
                "trace" => vec!["on", "off"],
                "log" => vec!["on", "off"],
                "help" => COMMANDS.iter().map(|(n, _, _)| *n).collect(),
                _ => vec![],
            }
        };
        let found = pool
            .into_iter()
            .filter(|c| c.starts_with(word))
            .map(|c| c.to_string())
            .collect();
        Ok((start, found))
    }
}

impl Hinter for Completion {
    type Hint = String;
}
impl Highlighter for Completion {}
impl Validator for Completion {}
impl Helper for Completion {}

/// The flag Ctrl-C sets while the guest runs under the REPL. One handler
/// per process (the `ctrlc` crate allows one), pointed at whichever
/// debugger runs.
fn ctrl_c_flag() -> &'static Mutex<Option<Arc<AtomicBool>>> {
    static FLAG: OnceLock<Mutex<Option<Arc<AtomicBool>>>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let _ = ctrlc::set_handler(|| {
            if let Some(Ok(guard)) = FLAG.get().map(|m| m.lock()) {
                if let Some(f) = guard.as_ref() {
                    f.store(true, Ordering::Relaxed);
                }
            }
        });
        Mutex::new(None)
    })
}

/// Exit status after a debugging session: the guest's, if its run ended;
/// else 0.
fn status_of(last: &Option<StopCause>) -> u8 {
    match last {
        Some(StopCause::Guest(o)) => o.exit_status() as u8,
        _ => 0,
    }
}

fn banner(m: &mut Machine) -> String {
    format!(
        "ringside debugger: stopped before the first instruction (`help` lists commands)\n{}",
        view::next_instruction(m)
    )
}

/// Run a script of debugger commands non-interactively, printing each
/// command after the prompt and then its output. A command the debugger
/// rejects ends the script with one error line naming the file and line.
pub fn run_script(m: &mut Machine, dbg: &mut Debugger, path: &Path) -> Result<u8> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow!("{}: cannot read debug script: {e}", path.display()))?;
    let mut last = None;
    print!("{}", banner(m));
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        println!("{PROMPT}{line}");
        let reply: Reply = dbg.execute(m, line);
        if reply.error {
            return Err(anyhow!(
                "{}:{}: {}",
                path.display(),
                n + 1,
                reply.text.trim_end()
            ));
        }
        print!("{}", reply.text);
        if reply.stop.is_some() {
            last = reply.stop;
        }
        if reply.quit {
            break;
        }
    }
    Ok(status_of(&last))
}

/// The interactive REPL.
pub fn run_interactive(m: &mut Machine, dbg: &mut Debugger) -> Result<u8> {
    run_interactive_with(m, dbg, &mut |_| {})
}

/// The interactive REPL, calling `after` with the machine once at the start
/// and after every command (a window shows the guest's screen then).
pub fn run_interactive_with(
    m: &mut Machine,
    dbg: &mut Debugger,
    after: &mut dyn FnMut(&mut Machine),
) -> Result<u8> {
    let mut ed: Editor<Completion, DefaultHistory> =
        Editor::new().map_err(|e| anyhow!("cannot start the line editor: {e}"))?;
    ed.set_helper(Some(Completion));
    let history = std::env::var_os("HOME").map(|h| Path::new(&h).join(".ringside_history"));
    if let Some(h) = &history {
        let _ = ed.load_history(h);
    }
    if let Ok(mut g) = ctrl_c_flag().lock() {
        *g = Some(dbg.interrupt_flag());
    }
    print!("{}", banner(m));
    after(m);
    let mut last = None;
    let mut previous = String::new();
    loop {
        let line = match ed.readline(PROMPT) {
            Ok(l) => l,
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => break,
        };
        // An empty line repeats the last command, as in gdb and Bochs.
        let line = if line.trim().is_empty() {
            previous.clone()
        } else {
            let _ = ed.add_history_entry(line.as_str());
            line
        };
        previous = line.clone();
        let reply = dbg.execute(m, &line);
        print!("{}", reply.text);
        after(m);
        if reply.stop.is_some() {
            last = reply.stop;
        }
        if reply.quit {
            break;
        }
    }
    if let Some(h) = &history {
        let _ = ed.save_history(h);
    }
    Ok(status_of(&last))
}
