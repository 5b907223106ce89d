//! Helpers shared by the binary's end-to-end tests: running `kaizen` on a home of the test's own,
//! with nothing from the caller's environment pointing it elsewhere.
#![allow(dead_code)] // Each test binary uses a different part.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_kaizen");

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `kaizen ARGS` on the home `home`, not yet started: no tracking server, credentials or
/// registered pipelines from the environment.
pub fn command(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("KAIZEN_HOME", home)
        .env("KAIZEN_LOG", "error")
        .env("NO_COLOR", "1")
        .env("USER", "tester")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("MLFLOW_TRACKING_URI")
        .env_remove("MLFLOW_TRACKING_USERNAME")
        .env_remove("MLFLOW_TRACKING_PASSWORD")
        .env_remove("MLFLOW_TRACKING_TOKEN")
        .env_remove("KAIZEN_PIPELINES");
    cmd
}

/// Runs `kaizen ARGS` with extra environment variables.
pub fn kaizen_env(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = command(home, args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run kaizen");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn kaizen(home: &Path, args: &[&str]) -> Out {
    kaizen_env(home, args, &[])
}

/// Runs a command that must succeed and answers its stdout.
pub fn ok(home: &Path, args: &[&str]) -> String {
    let out = kaizen(home, args);
    assert_eq!(
        out.code, 0,
        "kaizen {args:?} failed\nstdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    out.stdout
}

/// Runs a `--json` command that must succeed and parses its stdout.
pub fn ok_json(home: &Path, args: &[&str]) -> Value {
    let stdout = ok(home, args);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("kaizen {args:?}: stdout is not JSON ({e}):\n{stdout}"))
}

/// The step named `name` in a pipeline run's JSON summary.
pub fn step<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {v}"))
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {v}"))
}
