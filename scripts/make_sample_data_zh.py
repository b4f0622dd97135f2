"""Generates data/sample-zh: a SYNTHETIC, labelled Chinese review dataset (food delivery) for lstm-tch.

Every sentence is built from the templates and word lists below with a fixed seed, so the files
are reproducible: `python3 scripts/make_sample_data_zh.py` rewrites them identically. Like the
English sample (scripts/make_sample_data.py), it is made so that word order matters:
  - negation flips a clause: 不好吃, 并不新鲜, 一点也不热情 are negative; 一点也不贵, 并不慢,
    不油腻 positive; 没有想象中好 negative, 比想象中好 positive; 不错 stays positive;
  - contrast follows the clause after it: 虽然…，但是…, …，不过…, …，但…; both orders of the
    same two clauses occur, with opposite labels;
  - degree words (太…了, 非常, 特别, 有点, 挺) intensify without changing the polarity.
Splits: train 2000, dev 400, test 400 reviews, no review in two splits. Format: TSV with a
header `text<TAB>label`, labels 正面 (positive) / 负面 (negative). Standard library only.
"""

from pathlib import Path

from make_sample_data import write_splits

SEED = 2026
SIZES = {"train": 2000, "dev": 400, "test": 400}
OUT = Path(__file__).resolve().parent.parent / "data" / "sample-zh"

# Aspects: (subjects, positive adjectives, negative adjectives, positive adjectives that can be
# negated, negative adjectives that can be negated).
ASPECTS = [
    (["菜", "味道", "米饭", "汤", "牛肉面", "炒饭", "饺子", "口感", "烤鱼", "麻辣烫", "鸡腿"],
     ["好吃", "新鲜", "香", "地道", "入味", "可口"],
     ["难吃", "太咸", "油腻", "不新鲜", "没味道", "发酸"],
     ["好吃", "新鲜", "香", "地道", "入味"],
     ["难吃", "咸", "油腻"]),
    (["服务", "态度", "老板", "外卖小哥", "客服"],
     ["热情", "周到", "贴心", "耐心", "好"],
     ["冷淡", "敷衍", "差劲", "恶劣", "不耐烦"],
     ["热情", "周到", "耐心", "好"],
     ["冷淡", "敷衍", "差"]),
    (["送餐速度", "配送", "送餐"],
     ["快", "准时", "及时", "神速"],
     ["慢", "拖拉", "超时严重"],
     ["快", "准时", "及时"],
     ["慢", "拖拉"]),
    (["价格", "性价比"],
     ["实惠", "划算", "合理", "公道"],
     ["贵", "离谱", "坑人"],
     ["实惠", "划算", "合理"],
     ["贵", "离谱"]),
    (["包装", "餐盒"],
     ["精致", "严实", "干净", "用心"],
     ["简陋", "漏汤", "破损", "脏"],
     ["精致", "严实", "干净", "用心"],
     ["简陋", "脏"]),
    (["分量", "份量"],
     ["足", "很大", "实在"],
     ["少得可怜", "太少", "缩水"],
     ["足", "实在"],
     ["少"]),
]
GENERIC_POSITIVE = ["不错", "很棒", "没得说", "满分", "让人满意"]
GENERIC_NEGATIVE = ["一般", "糟糕", "令人失望", "不行", "太差了"]
DEGREES = ["", "", "很", "非常", "特别", "挺", "超级", "十分", "太"]
MILD = ["有点", "有些", "稍微有点"]  # only before negative adjectives: "有点咸"
# Adjectives that take no degree word (太咸, 不新鲜, 漏汤, ...).
UNGRADED = {"太咸", "不新鲜", "没味道", "发酸", "超时严重", "漏汤", "破损", "少得可怜", "太少", "缩水",
            "坑人", "离谱", "神速", "满分", "没得说", "太差了"}
NEGATORS = ["不", "并不", "一点也不", "一点都不", "不太", "没那么"]
SHOP = ["这家店", "这家", "这个外卖", "这家餐厅", "这次的外卖", "这份"]
POSITIVE_VERBS = ["喜欢", "推荐", "满意"]
POSITIVE_ENDINGS = ["下次还会再点", "强烈推荐", "会回购的", "五星好评", "已经是第三次点了", "值得一试"]
NEGATIVE_ENDINGS = ["再也不会点了", "不推荐", "差评", "后悔点了这家", "浪费钱", "不会再来了"]


def adjective_clause(rng, polarity):
    """A clause about one aspect whose sentiment is `polarity` (+1 or -1)."""
    subjects, pos, neg, pos_negatable, neg_negatable = rng.choice(ASPECTS)
    subject = rng.choice(subjects)
    kind = rng.random()
    if kind < 0.40:  # plain, with a degree word
        adjective = rng.choice(pos if polarity > 0 else neg)
        degree = rng.choice(DEGREES)
        if polarity < 0 and rng.random() < 0.25:
            degree = rng.choice(MILD)
        if adjective in UNGRADED:
            degree = ""
        return f"{subject}{degree}{adjective}" + ("了" if degree == "太" else "")
    if kind < 0.75:  # negated adjective of the opposite sentiment
        adjective = rng.choice(neg_negatable if polarity > 0 else pos_negatable)
        return f"{subject}{rng.choice(NEGATORS)}{adjective}"
    if kind < 0.85:  # compared with what was expected
        if polarity > 0:
            return f"{subject}比想象中{rng.choice(['好', '好很多', '还要好'])}"
        return f"{subject}{rng.choice(['没有想象中好', '没有想象的那么好', '不如想象中好'])}"
    generic = rng.choice(GENERIC_POSITIVE if polarity > 0 else GENERIC_NEGATIVE)
    return f"{subject}{generic}"


def verdict_clause(rng, polarity):
    """A clause about the shop as a whole."""
    if rng.random() < 0.5:
        return rng.choice(POSITIVE_ENDINGS if polarity > 0 else NEGATIVE_ENDINGS)
    verb = rng.choice(POSITIVE_VERBS)
    shop = rng.choice(SHOP)
    if polarity > 0:
        return f"{rng.choice(['很', '非常', '特别', '挺', ''])}{verb}{shop}"
    return f"{rng.choice(['不', '不太', '一点也不'])}{verb}{shop}"


def clause(rng, polarity):
    return adjective_clause(rng, polarity) if rng.random() < 0.8 else verdict_clause(rng, polarity)


def review(rng):
    """(text, label) from one of the templates."""
    polarity = rng.choice([1, -1])
    kind = rng.random()
    if kind < 0.30:
        text = clause(rng, polarity)
    elif kind < 0.50:  # 虽然 A，但是 B: B decides
        text = f"虽然{clause(rng, -polarity)}，{rng.choice(['但是', '但', '可是'])}{clause(rng, polarity)}"
    elif kind < 0.65:  # A，不过 B: B decides
        text = f"{clause(rng, -polarity)}，{rng.choice(['不过', '但是', '但', '就是'])}{clause(rng, polarity)}"
    elif kind < 0.80:  # two clauses that agree
        text = f"{clause(rng, polarity)}，{rng.choice(['', '而且', '还有'])}{clause(rng, polarity)}"
    else:  # an aspect, then the verdict
        text = f"{adjective_clause(rng, polarity)}，{verdict_clause(rng, polarity)}"
    text += rng.choice(["", "。", "。", "！", "！！", "～", "..."])
    return text, "正面" if polarity > 0 else "负面"


def main():
    write_splits(OUT, SIZES, SEED, review, "text\tlabel", "reviews", key=lambda t: t.rstrip("。！～."))


if __name__ == "__main__":
    main()
