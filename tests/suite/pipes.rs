//! A reader that stops early (`lstm-tch predict ... | head`): every command that writes to
//! standard output then ends quietly with status 0, never with a panic or an error message.

use std::{
    io::{Read, Write},
    process::{Command, Stdio},
};

use crate::common::{lstm_tch, run, tempdir, text};

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let ckpt = tempdir("pipes").join("ckpt");
    let train =
        ["train", "-q", "--epochs", "1", "--embedding-dim", "8", "--hidden-size", "8", "--threads", "1"];
    let output = run(lstm_tch(), &[&train[..], &["--out", ckpt.to_str().unwrap()]].concat());
    assert!(output.status.success(), "{}", text(&output).1);
    let ckpt = ckpt.to_str().unwrap();
    let reviews: Vec<String> = (0..2000).map(|i| format!("review number {i}, not bad")).collect();
    let many: Vec<&str> = reviews.iter().map(String::as_str).collect();
    let lines = reviews.join("\n");
    let commands: [Vec<&str>; 3] = [
        [&["explain", "--json", "--checkpoint", ckpt][..], &many[..200]].concat(),
        [&["explain", "--checkpoint", ckpt][..], &many[..200]].concat(),
        vec!["predict", "--json", "--checkpoint", ckpt],
    ];
    for args in commands {
        let mut child = Command::new(lstm_tch())
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = lines.clone();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes()); // predict reads its texts here
        });
        let mut first = [0u8; 10];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then the reader goes
        let output = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{}: {stderr}", args[0]);
        assert!(!stderr.contains("panicked") && !stderr.contains("error"), "{}: {stderr}", args[0]);
    }
}
