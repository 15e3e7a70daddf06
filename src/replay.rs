//! `riskd replay`: score files in event-time order. Placeholder being written.

use std::path::PathBuf;

use crate::config::Config;
use crate::decode::Format;

#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub format: Format,
    pub output: Option<PathBuf>,
    pub dead_letter: Option<PathBuf>,
    pub paths: Vec<PathBuf>,
    /// Force the progress bar on or off; `None` shows it when stderr is a terminal.
    pub progress: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {source}")]
    Input {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Output {
        path: String,
        source: std::io::Error,
    },
}

pub fn run(_config: &Config, _options: &ReplayOptions) -> Result<(), ReplayError> {
    Ok(())
}
