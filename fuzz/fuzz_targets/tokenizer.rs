//! Every tokenizer mode (the format-1 scanner included) on arbitrary UTF-8 text; the first
//! byte picks lower-casing. Checks the documented promise: no token is empty or whitespace.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lstm_tch::data::{Tokenizer, TokenizerConfig, TokenizerMode};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let lowercase = flags & 1 == 1;
    for mode in [TokenizerMode::Unicode, TokenizerMode::Chars, TokenizerMode::Jieba, TokenizerMode::V1Words] {
        let tokens = Tokenizer::new(TokenizerConfig { mode, lowercase }).tokenize(text);
        for t in &tokens {
            assert!(!t.is_empty() && !t.chars().all(char::is_whitespace), "{mode:?}: {t:?} in {tokens:?}");
        }
    }
});
