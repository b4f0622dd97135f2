"""Generates data/sample: a SYNTHETIC, labelled English review dataset for lstm-tch.

Every sentence is built from templates and word lists below, with a fixed seed, so the files are
reproducible: `python3 scripts/make_sample_data.py` rewrites them identically. It is made so that
word order matters, which a bag of words cannot learn:
  - negation flips a clause: "the plot was not bad" is positive, "i didn't enjoy it" negative;
  - contrast follows the last clause: "the acting was great, but it was far too long" is
    negative, "it was slow at first, but the ending was wonderful" positive; both orders of the
    same two clauses occur, with opposite labels;
  - "although A, B" follows B.
Splits: train 2000, dev 400, test 400 sentences, no sentence in two splits. Format: SST-2's
`sentence<TAB>label` with a header, labels `positive` / `negative`. Standard library only.
"""

import random
from pathlib import Path

SEED = 2024
SIZES = {"train": 2000, "dev": 400, "test": 400}
OUT = Path(__file__).resolve().parent.parent / "data" / "sample"

SUBJECTS = [
    "the movie", "the film", "the acting", "the plot", "the story", "the soundtrack", "the ending",
    "the dialogue", "the cast", "the cinematography", "the pacing", "the script", "the characters",
    "the special effects", "the direction", "the finale", "the lead actor", "the premise", "it",
    "this sequel", "the first half", "the humour", "the score", "the screenplay",
]
POSITIVE = [
    "good", "great", "excellent", "wonderful", "brilliant", "enjoyable", "charming", "moving",
    "beautiful", "superb", "delightful", "clever", "gripping", "funny", "fresh", "solid",
    "stunning", "touching", "smart", "fantastic", "memorable", "entertaining", "powerful", "lovely",
]
NEGATIVE = [
    "bad", "terrible", "awful", "boring", "dull", "weak", "clumsy", "bland", "tedious",
    "disappointing", "forgettable", "predictable", "messy", "shallow", "lifeless", "annoying",
    "painful", "silly", "flat", "dreadful", "lazy", "confusing", "mediocre", "poor",
]
INTENSIFIERS = ["", "", "", "very ", "really ", "truly ", "quite ", "absolutely ", "pretty ", "so "]
POSITIVE_PHRASES = [
    "worth every minute", "a must see", "kept me hooked", "a real treat", "full of heart",
    "an absolute joy", "better than i expected", "well worth the ticket", "a pleasant surprise",
]
NEGATIVE_PHRASES = [
    "far too long", "a waste of time", "too slow", "a complete mess", "hard to sit through",
    "worse than i expected", "not worth the ticket", "a huge letdown", "painfully long",
]
POSITIVE_VERBS = ["loved", "enjoyed", "adored", "liked", "admired", "appreciated"]
NEGATIVE_VERBS = ["hated", "disliked", "regretted", "resented", "despised"]
POSITIVE_BASE = ["love", "enjoy", "like", "admire", "appreciate"]
NEGATIVE_BASE = ["hate", "dislike", "regret", "resent", "despise"]
NEGATORS = ["did not", "didn't", "never", "don't", "do not"]
BE = ["was", "is"]
BE_NOT = ["was not", "is not", "wasn't", "isn't", "was never", "is hardly"]


def clause(rng, polarity):
    """A clause whose sentiment is `polarity` (+1 or -1), possibly through a negation."""
    subject = rng.choice(SUBJECTS)
    kind = rng.random()
    if kind < 0.45:
        words = POSITIVE if polarity > 0 else NEGATIVE
        return f"{subject} {rng.choice(BE)} {rng.choice(INTENSIFIERS)}{rng.choice(words)}"
    if kind < 0.70:  # negated adjective of the opposite sentiment
        words = NEGATIVE if polarity > 0 else POSITIVE
        return f"{subject} {rng.choice(BE_NOT)} {rng.choice(words)}"
    if kind < 0.85:
        phrases = POSITIVE_PHRASES if polarity > 0 else NEGATIVE_PHRASES
        return f"{subject} {rng.choice(BE)} {rng.choice(phrases)}"
    verbs, opposite = (POSITIVE_VERBS, NEGATIVE_BASE) if polarity > 0 else (NEGATIVE_VERBS, POSITIVE_BASE)
    if rng.random() < 0.6:
        return f"i {rng.choice(verbs)} {subject}"
    return f"i {rng.choice(NEGATORS)} {rng.choice(opposite)} {subject}"


def sentence(rng):
    """(text, label) from one of the templates."""
    polarity = rng.choice([1, -1])
    kind = rng.random()
    if kind < 0.35:
        text = clause(rng, polarity)
    elif kind < 0.75:  # contrast: the clause after "but" decides
        text = f"{clause(rng, -polarity)}, but {clause(rng, polarity)}"
    elif kind < 0.90:  # "although A, B": B decides
        text = f"although {clause(rng, -polarity)}, {clause(rng, polarity)}"
    else:  # two clauses that agree
        text = f"{clause(rng, polarity)} and {clause(rng, polarity)}"
    text = text[0].upper() + text[1:] + rng.choice([".", ".", ".", "!", "..."])
    return text, "positive" if polarity > 0 else "negative"


def write_splits(out, sizes, seed, make, header, unit, key=str.lower):
    """Draws `make(rng)` -> (text, label) until each split of `sizes` has its count of texts, no
    two texts with the same `key(text)`, and writes `out/NAME.tsv`."""
    rng = random.Random(seed)
    seen, splits = set(), {}
    for name, size in sizes.items():
        rows = []
        while len(rows) < size:
            text, label = make(rng)
            if key(text) not in seen:
                seen.add(key(text))
                rows.append((text, label))
        splits[name] = rows
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        with open(out / f"{name}.tsv", "w", encoding="utf-8") as f:
            f.write(header + "\n")
            f.writelines(f"{text}\t{label}\n" for text, label in rows)
        print(f"wrote {out / f'{name}.tsv'}: {len(rows)} {unit}")


def main():
    write_splits(OUT, SIZES, SEED, sentence, "sentence\tlabel", "sentences")


if __name__ == "__main__":
    main()
