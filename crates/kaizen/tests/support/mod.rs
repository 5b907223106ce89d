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

/// A `kaizen server` child process on a free port of 127.0.0.1, killed on drop.
pub struct Server {
    child: std::process::Child,
    pub url: String,
}

impl Server {
    /// Starts `kaizen server --port 0 EXTRA...` on `home` and waits until it listens.
    pub fn start(home: &Path, extra: &[&str]) -> Self {
        let mut args = vec!["server", "--host", "127.0.0.1", "--port", "0"];
        args.extend_from_slice(extra);
        Self::spawn(home, &args)
    }

    /// Starts `kaizen ARGS` (a command that prints `... listening on URL` on stderr, such as
    /// `server` or `serve`) and waits until it listens.
    pub fn spawn(home: &Path, args: &[&str]) -> Self {
        Self::spawn_env(home, args, &[])
    }

    /// [`Server::spawn`] with extra environment variables.
    pub fn spawn_env(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        use std::io::{BufRead, BufReader, Read};
        use std::process::Stdio;
        let mut command = command(home, args);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .env("KAIZEN_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kaizen server");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let url = loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = child.kill();
                let _ = child.wait();
                panic!("kaizen {args:?} exited before listening:\n{seen}");
            }
            seen.push_str(&line);
            if let Some(rest) = line.split(" listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining the server's log so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = stderr.read_to_string(&mut sink);
        });
        Server { child, url }
    }

    /// One HTTP/1.1 request with a raw JSON body; answers the status and the JSON body (a
    /// string when the body is not JSON).
    pub fn call(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        self.call_as(method, path, "application/json", body)
    }

    /// [`Server::call`] with another content type.
    pub fn call_as(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> (u16, Value) {
        use std::io::{Read, Write};
        let authority = self.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(authority).expect("connect to the server");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, payload) = text.split_once("\r\n\r\n").expect("an HTTP answer");
        let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let payload = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(payload)
        } else {
            payload.to_string()
        };
        let value = serde_json::from_str(&payload).unwrap_or(Value::String(payload));
        (status, value)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A webhook receiver: answers 200 and keeps each JSON body.
pub fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use std::io::{BufRead, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&bodies);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok()
                && let Ok(v) = serde_json::from_slice(&body)
            {
                seen.lock().unwrap().push(v);
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, bodies)
}
