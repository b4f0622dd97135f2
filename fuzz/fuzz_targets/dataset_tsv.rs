//! The TSV dataset reader ([`dataset::read`], what `dataset::load` runs on a `.tsv` file) on
//! arbitrary bytes: an error is fine, a panic, hang or huge allocation is not.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lstm_tch::data::{dataset, Columns, Format};

fuzz_target!(|data: &[u8]| {
    if let Ok(examples) = dataset::read(data, Path::new("fuzz.tsv"), Format::Tsv, &Columns::default()) {
        assert!(!examples.is_empty());
        for e in &examples {
            assert!(!e.label.is_empty() && e.label.trim() == e.label, "{e:?}");
        }
    }
});
