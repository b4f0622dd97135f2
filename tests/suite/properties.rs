//! Invariants of the text pipeline, over generated inputs (proptest): every tokenizer mode on
//! arbitrary Unicode gives tokens that are neither empty nor blank; encoding gives ids inside the
//! vocabulary and at least one per text; truncation keeps `min(len, max_len)` ids, a prefix and
//! a suffix of the text; a batch holds each text's ids, then padding only; an epoch's batches,
//! plain or bucketed, are a permutation of the texts in batches of at most the batch size.

use lstm_tch::data::{
    vocab::PAD_ID, Encoded, Tokenizer, TokenizerConfig, TokenizerMode, Truncate, Truncation, Vocab,
};
use proptest::prelude::*;

fn mode() -> impl Strategy<Value = TokenizerMode> {
    prop_oneof![Just(TokenizerMode::Unicode), Just(TokenizerMode::Chars), Just(TokenizerMode::Jieba)]
}

fn truncation() -> impl Strategy<Value = Truncation> {
    prop_oneof![Just(Truncation::Head), Just(Truncation::Tail), Just(Truncation::HeadTail)]
}

/// Texts mixing scripts, spaces, punctuation and combining marks.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z' ,.!]{0,40}",
        "[\u{4e00}-\u{4e80}，。！ ]{0,30}",
        "[\u{3040}-\u{30ff}\u{ac00}-\u{ac40} a-z\u{0301}\u{200d}]{0,30}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn tokens_are_never_empty_or_blank(text in text(), mode in mode(), lowercase in any::<bool>()) {
        let tokens = Tokenizer::new(TokenizerConfig { mode, lowercase }).tokenize(&text);
        for t in &tokens {
            prop_assert!(!t.is_empty() && !t.chars().all(char::is_whitespace), "{mode:?}: {t:?} in {tokens:?}");
        }
        if text.chars().all(char::is_whitespace) {
            prop_assert!(tokens.is_empty());
        }
    }

    #[test]
    fn encoded_ids_lie_in_the_vocabulary(
        train in prop::collection::vec(text(), 1..8),
        texts in prop::collection::vec(text(), 1..8),
        mode in mode(),
        max_len in 1usize..12,
        keep in truncation(),
    ) {
        let tokenizer = Tokenizer::new(TokenizerConfig { mode, lowercase: true });
        let vocab = Vocab::from_texts(train.iter().map(String::as_str), &tokenizer, 1, None).unwrap();
        let truncate = Truncate { max_len, keep };
        let labels = vec![0; texts.len()];
        let encoded = Encoded::new(texts.iter().map(String::as_str), labels, &tokenizer, &vocab, truncate).unwrap();
        prop_assert_eq!(encoded.len(), texts.len());
        for (i, text) in texts.iter().enumerate() {
            let ids = encoded.ids(i);
            let tokens = tokenizer.tokenize(text).len();
            prop_assert_eq!(ids.len(), tokens.clamp(1, max_len), "{:?}", text);
            prop_assert!(ids.iter().all(|&id| id > PAD_ID && (id as usize) < vocab.len()), "{:?}", ids);
        }
    }

    #[test]
    fn truncation_keeps_a_prefix_and_a_suffix(len in 1usize..40, max_len in 1usize..20, keep in truncation()) {
        let vocab = Vocab::from_tokens(
            ["<pad>", "<unk>"].iter().map(|s| s.to_string()).chain((0..40).map(|i| format!("t{i}"))).collect(),
        ).unwrap();
        let text: Vec<String> = (0..len).map(|i| format!("t{i}")).collect();
        let tokenizer = Tokenizer::default();
        let encoded =
            Encoded::new([text.join(" ").as_str()], vec![0], &tokenizer, &vocab, Truncate { max_len, keep }).unwrap();
        let ids = encoded.ids(0);
        let all: Vec<i64> = (0..len as i64).map(|i| i + 2).collect();
        let kept = len.min(max_len);
        prop_assert_eq!(ids.len(), kept);
        let head = (0..=kept).rev().find(|&h| ids[..h] == all[..h]).unwrap();
        prop_assert_eq!(&ids[head..], &all[len - (kept - head)..], "{:?}: {:?}", keep, ids);
        match keep {
            Truncation::Head => prop_assert_eq!(ids, &all[..kept]),
            Truncation::Tail => prop_assert_eq!(ids, &all[len - kept..]),
            Truncation::HeadTail => prop_assert!(len <= max_len || head >= max_len / 4),
        }
    }

    #[test]
    fn batches_hold_each_text_then_padding(
        texts in prop::collection::vec(prop::collection::vec(2i64..50, 1..15), 1..40),
        batch_size in 1usize..9,
        bucket in any::<bool>(),
    ) {
        let encoded = Encoded::from_ids(&texts, vec![0; texts.len()]).unwrap();
        let batches = encoded.epoch_batches(batch_size, bucket).unwrap();
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort_unstable();
        prop_assert_eq!(seen, (0..texts.len()).collect::<Vec<_>>(), "an epoch is a permutation");
        for indices in &batches {
            prop_assert!(!indices.is_empty() && indices.len() <= batch_size);
            let batch = encoded.batch(indices).unwrap();
            let lengths = Vec::<i64>::try_from(&batch.lengths).unwrap();
            let width = batch.tokens.size()[1] as usize;
            let tokens = Vec::<i64>::try_from(&batch.tokens.flatten(0, -1)).unwrap();
            for (row, &i) in indices.iter().enumerate() {
                prop_assert_eq!(lengths[row] as usize, texts[i].len());
                let row = &tokens[row * width..(row + 1) * width];
                prop_assert_eq!(&row[..texts[i].len()], texts[i].as_slice());
                prop_assert!(row[texts[i].len()..].iter().all(|&t| t == PAD_ID));
            }
        }
    }
}
