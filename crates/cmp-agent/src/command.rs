//! Runs a target's configured test and reload commands: argv, no shell, no stdin, stdout and
//! stderr captured together (truncated), killed when the timeout passes.

use std::process::Stdio;
use std::time::Duration;

/// How much of a command's output a report keeps (the end, where the error usually is).
pub const OUTPUT_LIMIT: usize = 4096;

/// A command that did not succeed.
#[derive(Debug)]
pub(crate) struct CommandFailed {
    pub(crate) message: String,
    pub(crate) output: String,
}

/// Runs `argv` with a timeout; `Ok(output)` when it exits 0.
pub(crate) async fn run(argv: &[String], timeout: Duration) -> Result<String, CommandFailed> {
    let Some((program, args)) = argv.split_first() else {
        return Err(CommandFailed { message: "empty command".into(), output: String::new() });
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CommandFailed {
            message: format!("cannot run `{program}`: {e}"),
            output: String::new(),
        })?;
    // On timeout the future is dropped with the child, which kill_on_drop kills.
    let result = tokio::time::timeout(timeout, child.wait_with_output()).await;
    let output = match result {
        Err(_) => {
            return Err(CommandFailed {
                message: format!(
                    "`{}` did not finish within {} s",
                    argv.join(" "),
                    timeout.as_secs()
                ),
                output: String::new(),
            });
        }
        Ok(Err(e)) => {
            return Err(CommandFailed {
                message: format!("waiting for `{program}`: {e}"),
                output: String::new(),
            });
        }
        Ok(Ok(output)) => output,
    };
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    let text = truncate(text.trim());
    if output.status.success() {
        Ok(text)
    } else {
        Err(CommandFailed {
            message: format!("`{}` failed ({})", argv.join(" "), output.status),
            output: text,
        })
    }
}

/// The last [`OUTPUT_LIMIT`] bytes of `text` (on a character boundary), marked when cut.
pub(crate) fn truncate(text: &str) -> String {
    if text.len() <= OUTPUT_LIMIT {
        return text.to_owned();
    }
    let mut start = text.len() - OUTPUT_LIMIT;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("[...]{}", &text[start..])
}
