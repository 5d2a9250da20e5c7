//! The plugin's log: one line per event, to `log_file_path` when set
//! (appended), else to stderr, which the runtime collects. Never to
//! stdout, which carries the result. A log that cannot be written is
//! silently dropped: logging never fails an invocation.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use super::config::LogLevel;

#[derive(Debug)]
pub struct Log {
    level: LogLevel,
    file: Option<Mutex<File>>,
    /// Prefix of every line: the command and container.
    context: String,
}

impl Log {
    pub fn new(level: LogLevel, path: Option<&Path>, context: String) -> Log {
        let file = path.and_then(|p| {
            if let Some(dir) = p.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            File::options().create(true).append(true).open(p).ok()
        });
        Log {
            level,
            file: file.map(Mutex::new),
            context,
        }
    }

    /// A log to stderr at `info`, for before the config is known.
    pub fn stderr(context: String) -> Log {
        Log::new(LogLevel::Info, None, context)
    }

    pub fn write(&self, level: LogLevel, msg: &str) {
        if level > self.level {
            return;
        }
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let line = format!("{secs:.3} {level:?} {} {msg}\n", self.context);
        match &self.file {
            Some(f) => {
                if let Ok(mut f) = f.lock() {
                    let _ = f.write_all(line.as_bytes());
                }
            }
            None => {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
        }
    }

    pub fn info(&self, msg: &str) {
        self.write(LogLevel::Info, msg);
    }

    pub fn warn(&self, msg: &str) {
        self.write(LogLevel::Warning, msg);
    }

    pub fn debug(&self, msg: &str) {
        self.write(LogLevel::Debug, msg);
    }
}
