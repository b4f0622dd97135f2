//! Labelled text datasets: loading, label sets and splits.
//!
//! Formats (chosen by `--format`, or from the path: a directory is IMDB, else the extension):
//! - **TSV** (`.tsv`): a header row, then one example per line, fields split on tabs with no
//!   quoting (GLUE's SST-2 `sentence<TAB>label` reads as is);
//! - **CSV** (`.csv`): a header row, RFC 4180 fields (quotes, `""` escapes, newlines in quotes);
//! - **JSON Lines** (`.jsonl`, `.json`): one object per line; labels may be strings or integers;
//! - **IMDB** (`aclImdb/train`): a folder with `pos/` and `neg/` folders of `.txt` reviews; the
//!   folder name is the label and `<br />` tags become spaces.
//!
//! CSV and TSV are read by the `csv` crate; CRLF line ends and a UTF-8 byte-order mark (Excel's
//! "CSV UTF-8") are accepted in CSV, TSV and JSON Lines, and a file that is not UTF-8 (GBK, say)
//! stops with its name and line.
//!
//! The text column is `--text-column`, else the first of `text`, `sentence`, `review`,
//! `text_a`, `content`, `comment` present; the label column is `--label-column`, else the first
//! of `label`, `sentiment`, `polarity`. Each file's header is resolved on its own, so a train
//! file with `sentence` and a test file with `content` need no flag. Every error names the file
//! and, where there is one, the line.

use std::{
    fmt,
    fs::File,
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
};

use anyhow::{bail, ensure, Context, Result};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// Where an example came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line (1-based) of the dataset file.
    Line(PathBuf, usize),
    /// A whole file (IMDB).
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Line(path, line) => write!(f, "{}:{line}", path.display()),
            Origin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// One labelled text.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The raw text.
    pub text: String,
    /// The label as written (an integer label is kept as its decimal text).
    pub label: String,
    /// Where it came from.
    pub origin: Origin,
}

/// The file formats [`load`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Tab-separated with a header, no quoting (SST-2).
    Tsv,
    /// Comma-separated with a header, RFC 4180 quoting.
    Csv,
    /// JSON Lines: one object per line.
    Jsonl,
    /// An `aclImdb`-style folder of `pos/` and `neg/` `.txt` files.
    Imdb,
}

impl Format {
    /// The format a path implies: a directory is IMDB, else by extension.
    pub fn detect(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Ok(Format::Imdb);
        }
        ensure!(path.exists(), "cannot read {}: no such file or directory", path.display());
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("tsv") | Some("txt") => Ok(Format::Tsv),
            Some("csv") => Ok(Format::Csv),
            Some("jsonl") | Some("json") | Some("ndjson") => Ok(Format::Jsonl),
            _ => bail!("{}: cannot tell the format from the name; pass --format", path.display()),
        }
    }
}

/// Which columns (or JSON fields) hold the text and the label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    /// The text column; `None` tries [`TEXT_COLUMNS`] in order.
    pub text: Option<String>,
    /// The label column; `None` tries [`LABEL_COLUMNS`] in order.
    pub label: Option<String>,
}

/// The text column names tried, in order, when none is given.
pub const TEXT_COLUMNS: [&str; 6] = ["text", "sentence", "review", "text_a", "content", "comment"];
/// The label column names tried, in order, when none is given.
pub const LABEL_COLUMNS: [&str; 3] = ["label", "sentiment", "polarity"];

impl Columns {
    fn pick(
        path: &Path,
        header: &[String],
        chosen: &Option<String>,
        defaults: &[&str],
        what: &str,
    ) -> Result<usize> {
        let wanted: Vec<&str> = match chosen {
            Some(name) => vec![name.as_str()],
            None => defaults.to_vec(),
        };
        wanted.iter().find_map(|w| header.iter().position(|h| h.trim() == *w)).with_context(|| {
            format!(
                "{}:1: no {what} column {} in the header; its columns are [{}]; pass --{what}-column",
                path.display(),
                wanted.join(" or "),
                header.join(", ")
            )
        })
    }
}

/// Loads every example of `path` (a file, or an IMDB folder).
pub fn load(path: &Path, format: Option<Format>, columns: &Columns) -> Result<Vec<Example>> {
    let format = match format {
        Some(f) => f,
        None => Format::detect(path)?,
    };
    if format == Format::Imdb {
        let examples = load_imdb(path)?;
        ensure!(!examples.is_empty(), "{}: no examples", path.display());
        return Ok(examples);
    }
    read(open(path)?, path, format, columns)
}

/// Reads every example of a TSV, CSV or JSON Lines file from `reader`, as [`load`] reads the file
/// at `path`; `path` only names the source in errors and in each example's [`Origin`]. An IMDB
/// folder is no single stream: [`Format::Imdb`] is an error here.
pub fn read(reader: impl Read, path: &Path, format: Format, columns: &Columns) -> Result<Vec<Example>> {
    let reader = skip_bom(reader, path)?;
    let examples = match format {
        Format::Imdb => bail!("{}: an IMDB folder cannot be read from a stream", path.display()),
        Format::Jsonl => read_jsonl(reader, path, columns)?,
        Format::Tsv | Format::Csv => read_delimited(reader, path, format, columns)?,
    };
    ensure!(!examples.is_empty(), "{}: no examples", path.display());
    Ok(examples)
}

fn open(path: &Path) -> Result<File> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    ensure!(
        !file.metadata().map(|m| m.is_dir()).unwrap_or(false),
        "{} is a directory; pass --format imdb for an IMDB folder",
        path.display()
    );
    Ok(file)
}

/// `reader`, buffered, past a UTF-8 byte-order mark (Excel's "CSV UTF-8"), which is not part of
/// the first header name. The mark is looked for in the first three bytes however the reader
/// delivers them (a pipe may give one at a time).
fn skip_bom(mut reader: impl Read, path: &Path) -> Result<BufReader<impl Read>> {
    let mut head = Vec::with_capacity(BOM.len());
    (&mut reader)
        .take(BOM.len() as u64)
        .read_to_end(&mut head)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if head == BOM {
        head.clear();
    }
    Ok(BufReader::new(std::io::Cursor::new(head).chain(reader)))
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The error for bytes that are not UTF-8 at `place` (`file:line`).
fn not_utf8(place: impl fmt::Display, error: std::str::Utf8Error) -> anyhow::Error {
    anyhow::anyhow!(
        "{place}: not UTF-8 (invalid byte at offset {}); convert the file first, e.g. for GBK: \
         iconv -f GBK -t UTF-8 IN > OUT",
        error.valid_up_to()
    )
}

/// Reads `reader`'s lines as UTF-8 (a byte-order mark before the first and a trailing `\r`
/// dropped), naming `source` and the line of invalid bytes or a read error. Yields (1-based
/// line number, text).
pub fn lines<'a>(
    source: impl fmt::Display + 'a,
    reader: impl BufRead + 'a,
) -> impl Iterator<Item = Result<(usize, String)>> + 'a {
    reader.split(b'\n').enumerate().map(move |(i, bytes)| {
        let line = i + 1;
        let mut bytes = bytes.with_context(|| format!("cannot read {source}:{line}"))?;
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        if line == 1 && bytes.starts_with(BOM) {
            bytes.drain(..BOM.len());
        }
        let text =
            String::from_utf8(bytes).map_err(|e| not_utf8(format!("{source}:{line}"), e.utf8_error()))?;
        Ok((line, text))
    })
}

fn read_delimited(
    reader: impl BufRead,
    path: &Path,
    format: Format,
    columns: &Columns,
) -> Result<Vec<Example>> {
    let tsv = format == Format::Tsv;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(if tsv { b'\t' } else { b',' })
        .quoting(!tsv) // TSV (SST-2, CLUE) has no quoting: a `"` is text
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut records = reader.byte_records();
    let mut next = || -> Result<Option<(usize, Vec<String>)>> {
        let Some(record) = records.next() else { return Ok(None) };
        let record = record.map_err(|e| delimited_error(path, e))?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let fields = record
            .iter()
            .map(|f| std::str::from_utf8(f).map(str::to_owned))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| not_utf8(format!("{}:{line}", path.display()), e))?;
        Ok(Some((line, fields)))
    };
    let Some((_, header)) = next()? else {
        bail!("{}: empty file (expected a header row)", path.display());
    };
    let text_col = Columns::pick(path, &header, &columns.text, &TEXT_COLUMNS, "text")?;
    let label_col = Columns::pick(path, &header, &columns.label, &LABEL_COLUMNS, "label")?;
    let mut examples = Vec::new();
    while let Some((line, mut fields)) = next()? {
        if fields.len() == 1 && fields[0].is_empty() {
            continue; // blank line
        }
        if fields.len() != header.len() {
            // A quote left open runs its field on to the end of the file.
            let open_quote = !tsv && fields.iter().any(|f| f.contains('\n'));
            bail!(
                "{}:{line}: {} fields, the header has {}{}",
                path.display(),
                fields.len(),
                header.len(),
                if open_quote {
                    " (a quoted field runs over several lines: is a quote left open?)"
                } else {
                    ""
                }
            );
        }
        let label = std::mem::take(&mut fields[label_col]).trim().to_owned();
        ensure!(!label.is_empty(), "{}:{line}: empty label", path.display());
        let text = std::mem::take(&mut fields[text_col]);
        examples.push(Example { text, label, origin: Origin::Line(path.to_owned(), line) });
    }
    Ok(examples)
}

/// A `csv` error as one line naming the file and line.
fn delimited_error(path: &Path, error: csv::Error) -> anyhow::Error {
    let line = error.position().map_or(String::new(), |p| format!(":{}", p.line()));
    match error.into_kind() {
        csv::ErrorKind::Io(e) => {
            anyhow::Error::new(e).context(format!("cannot read {}{line}", path.display()))
        }
        other => anyhow::anyhow!("{}{line}: {other:?}", path.display()),
    }
}

fn read_jsonl(reader: impl BufRead, path: &Path, columns: &Columns) -> Result<Vec<Example>> {
    let mut examples = Vec::new();
    for item in lines(path.display(), reader) {
        let (line, text) = item?;
        if text.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}:{line}: invalid JSON", path.display()))?;
        let object =
            value.as_object().with_context(|| format!("{}:{line}: not a JSON object", path.display()))?;
        let field = |chosen: &Option<String>, defaults: &[&str], what: &str| {
            let names: Vec<&str> = chosen.as_deref().map_or(defaults.to_vec(), |c| vec![c]);
            names.iter().find_map(|n| object.get(*n)).with_context(|| {
                format!(
                    "{}:{line}: no {what} field {}; pass --{what}-column",
                    path.display(),
                    names.join(" or ")
                )
            })
        };
        let text = match field(&columns.text, &TEXT_COLUMNS, "text")? {
            serde_json::Value::String(s) => s.clone(),
            other => bail!("{}:{line}: the text is not a string: {other}", path.display()),
        };
        let label = match field(&columns.label, &LABEL_COLUMNS, "label")? {
            serde_json::Value::String(s) if !s.trim().is_empty() => s.trim().to_owned(),
            serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
            other => bail!(
                "{}:{line}: a label must be a non-empty string or an integer, got {other}",
                path.display()
            ),
        };
        examples.push(Example { text, label, origin: Origin::Line(path.to_owned(), line) });
    }
    Ok(examples)
}

fn load_imdb(dir: &Path) -> Result<Vec<Example>> {
    let mut examples = Vec::new();
    for label in ["neg", "pos"] {
        let folder = dir.join(label);
        let entries = std::fs::read_dir(&folder)
            .with_context(|| format!("{}: not an IMDB folder (cannot read {label}/)", dir.display()))?;
        let mut files: Vec<PathBuf> = entries
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("cannot list {}", folder.display()))?;
        files.retain(|p| p.extension().is_some_and(|e| e == "txt"));
        files.sort();
        for file in files {
            // A FIFO or a device named *.txt would be waited on or read forever.
            let special = std::fs::metadata(&file).is_ok_and(|m| !m.is_file());
            ensure!(!special, "{}: not a regular file", file.display());
            let mut bytes = Vec::new();
            File::open(&file)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .with_context(|| format!("cannot read {}", file.display()))?;
            let text = String::from_utf8(bytes).map_err(|e| not_utf8(file.display(), e.utf8_error()))?;
            let text = text.replace("<br />", " ").replace("<br/>", " ");
            examples.push(Example { text, label: label.to_owned(), origin: Origin::File(file) });
        }
    }
    Ok(examples)
}

/// Splits `examples` into train/dev/test with fractions `dev` and `test` of the whole, shuffled
/// by a seeded generator (independent of libtorch's, so model initialisation is unaffected).
pub fn split(mut examples: Vec<Example>, dev: f64, test: f64, seed: u64) -> Result<[Vec<Example>; 3]> {
    ensure!(
        dev >= 0.0 && test >= 0.0 && dev + test < 1.0,
        "split fractions must be ≥ 0 and sum to less than 1"
    );
    let mut rng = SplitMix64(seed);
    for i in (1..examples.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        examples.swap(i, j);
    }
    let n = examples.len();
    let n_test = (n as f64 * test).round() as usize;
    let n_dev = (n as f64 * dev).round() as usize;
    let test_part = examples.split_off(n - n_test);
    let dev_part = examples.split_off(n - n_test - n_dev);
    Ok([examples, dev_part, test_part])
}

/// SplitMix64: a small, well-mixed generator for the data split.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
