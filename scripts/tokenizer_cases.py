#!/usr/bin/env python3
"""tokenizer_cases.py: hard cases for af-tokenize, as JSONL {"text": ..., "pair": ...}.

    tokenizer_cases.py hard           the hand-written cases (accents, CJK, emoji, controls, ...)
    tokenizer_cases.py random N SEED  N random strings drawn from the character classes the
                                      tokenizer treats differently (deterministic for a seed)
    tokenizer_cases.py corpus         the text the test vocabulary is built from

All text here is written for these tests (no dataset text). Characters new in Unicode 15 are
avoided, so that the cases mean the same under Unicode 14 and 15 tables.
"""
import json
import random
import sys

HARD = [
    # accents and case
    "Héllo Wörld", "naïve café résumé", "Ångström ÉCOLE Ça", "e\u0301 vs \u00e9", "ﬁne ﬂour",
    "İstanbul İİ", "ΟΔΟΣ ΣΑΣ. Σ", "straße STRASSE", "\u212a kelvin \u2126 ohm", "ǅemal ǈ ǋ",
    "ᾈ ᾼ ῼ", "Ꭰ Ꭱ Ꭲ cherokee", "\U00010400\U00010401 deseret", "ＡＢＣ１２３ fullwidth",
    "Crème Brûlée À LA MODE", "ŁÓDŹ Øresund Þórr ÐÆ", "Dvořák Škoda Čapek", "ẞ capital sharp s",
    "x\U0001D16D\U0001D165 reorder", "a\u0301\u0316 marks", "\u0301 lonely accent", "o\u0308\u0304",
    "\u1fef varia \u037e question \u0387 ano", "\u0340\u0341 tone marks", "\u2329angle\u232a",
    # NFC (current HF): compositions, singletons, exclusions, Hangul jamo
    "A\u030a\u0301 \u212b \u2126 e\u0323\u0302", "\u0958\u0959 \u0f73 \u0344 excluded",
    "\u1112\u1161\u11ab\u1100\u116e\u11a8 jamo", "\u1e9b\u0323 long s", "o\u0328\u0304",
    # CJK and neighbours
    "我爱北京天安门", "日本語のテキストです", "한국어 텍스트 한", "中文English混合text", "\uf900\uf901 compat",
    "\U00020000\U0002a6df ext b", "\u3400\u4dbf ext a", "\u2f800 \U0002f800 compat supplement",
    "カタカナ ひらがな", "ㄅㄆㄇ bopomofo", "\u3000ideographic space\u3000", "中。文，标点！",
    # emoji and symbols
    "I ❤️ NY 😀👍🏽", "👨\u200d👩\u200d👧 family", "🇫🇷🇯🇵 flags", "☃ ★ ♥ ♦", "∑ ∫ √ ∞ ≠ ≤",
    "© ® ™ ℠", "€100 £5 ¥300 ₹20", "½ ¼ ① ② ⅷ", "°C °F µm", "→ ← ↑ ↓ ⇒",
    # control and format characters, whitespace
    "a\x00b", "a\x01b\x7fc", "tab\there", "new\nline", "cr\rreturn", "crlf\r\nend",
    "\u200bzero\u200bwidth\u200b", "soft\u00adhyphen", "bom\ufeffin", "\ufffd replacement \ufffd",
    "line\u2028sep", "para\u2029sep", "nbsp\u00a0here", "\x85next line", "\x0bvt\x0cff",
    "\x1cfs\x1dgs\x1ers\x1fus", "\u2060word\u2060joiner", "\ue000private\uf8ff", "\U000e0041tag",
    "rtl\u200fmark\u200e", "\u180emongolian", "en\u2002em\u2003thin\u2009hair\u200a",
    "\u1680ogham", "\u202fnarrow\u205fmath",
    # long words
    "a" * 100, "a" * 101, "é" * 100, "é" * 101, "supercalifragilistic" * 5,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "x" * 300 + " short", "ab" * 50 + "!" + "cd" * 51, "\u0301" * 120 + "z",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    # punctuation
    "!!!???...", "--->", "«quoted» „Anführung“ ‚single‘", "¿Qué? ¡Hola!", "a.b.c", "1,000,000.50",
    "e-mail re-enter", "$100 ^_^ `~` |pipe|", "(a)[b]{c}<d>", "§¶†‡•", "‰‱′″", "middle·dot",
    "don't can't won't", "''quotes'' \"double\"", "C++ C# F#", "user@example.com",
    "https://example.com/path?q=1&b=2#frag", "#hashtag @mention", "...and...", "—em–en-dash",
    "\\back\\slash/", "＃fullwidth！？", "。、「」", "؟ ، ؛", "।॥",
    # mixed scripts
    "Привет мир", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Γειά σου Κόσμε",
    "ქართული ენა", "Բարեւ", "abcабвαβγ", "ℌ𝔢𝔩𝔩𝔬 𝐁𝐨𝐥𝐝", "Ｈｅｌｌｏ", "Ⓐⓑⓒ", "ㅎㅏㄴ",
    # special tokens written in the text
    "[CLS] hello [SEP]", "foo[SEP]bar", "[cls] [sep]", "[MASK]ed word", "[UNK]", "[PAD][PAD]",
    "[ CLS ]", "[CL\u200bS]", "[CLS", "CLS]", "[[SEP]]", "x[MASK]y[MASK]z", "[Cls]",
    # empty and blank
    "", " ", "   ", "\t\n", "\u200b", "\x00", "\ufffd",
    # numbers
    "3.14159 2.71828", "1/2 3/4", "10^6 1e-9", "٣٤٥ ۴۵۶", "१२३",
]

# Pairs, run with several --max-len values: ties, one side much longer, empty sides.
PAIRS = [
    ("one two three four five", "six seven eight nine ten"),
    ("a b c d e f g h i j k l m n o p", "q"),
    ("q", "a b c d e f g h i j k l m n o p"),
    ("", "only the second text has words"),
    ("only the first text has words", ""),
    ("", ""),
    ("the same length here", "the same length there"),
    ("Héllo Wörld, ça va?", "我爱北京天安门 and more"),
    ("supercalifragilisticexpialidocious " * 3, "short"),
    ("[CLS] inside a pair", "[SEP] too"),
    ("😀 " * 10, "ΟΔΟΣ " * 10),
]

# Each class is picked as a whole, then a character from it, so rare classes show up often.
CLASSES = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    " " * 8 + "\t\n\r",
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝİıŁłŒœŠšŽžßẞ",
    "\u0300\u0301\u0302\u0303\u0308\u030a\u0316\u0327\u0345\u20d7\u1dc0",
    "αβγδεζηθΑΒΓΔΣσςωΩάέήίόύώᾈᾼῼ\u037e\u0387\u1fef",
    "абвгдежзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗ",
    "我爱北京天安门中文日本語\u3400\uf900\U00020000\U0002b740",
    "あいうえおカキクケコ한국어텍스트ㄱㄴㄷ",
    "😀👍🏽❤️☃★♥🇫🇷\u200d\ufe0f",
    "\x00\x01\x07\x1b\x7f\x85\u200b\u200e\u2060\ufeff\ufffd\ue000",
    "\u00a0\u1680\u2000\u2002\u2009\u202f\u205f\u3000\u2028\u2029",
    "«»„“‚‘¿¡§¶†‡•‰′″·—–…。、「」！？",
    "€£¥₹$©®™½①∑∫√∞≠",
    "ＡＢＣ１２３ａｂｃＨｅｌｌｏⒶⓑℌ𝔢𝐁",
    "\U0001d16d\U0001d165\u0f71\u0f72\u302e\u302f",
    "[CLS][SEP][MASK][UNK][PAD]",
    "\u1100\u1112\u1161\u1175\u11a8\u11c2\uac00\ud7a3\u212b\u2126\u212a\u1fef\u037e\u0387"
    "\u2329\uf900\u0958\u0344\u0f73\u1e9b\u0301\u0323\u0328\u0304",
]

CORPUS = """\
The committee met on Tuesday to discuss the budget for the coming year.
She walked along the river at dawn, listening to the birds and the distant traffic.
A good tokenizer splits words into pieces that a model has seen before.
Unbelievably, the unaffable clerk refused to stamp the forms again.
We measured the temperature every hour and wrote the numbers in a notebook.
Running, jumping and swimming are the three events of the summer festival.
The old library keeps maps, letters and photographs from the last two centuries.
He said it was the best movie he had seen in years, but his friends disagreed.
Prices rose sharply after the storm damaged the harbour and the main roads.
Children learn languages quickly when they hear them spoken at home.
The recipe asks for flour, sugar, butter, eggs and a pinch of salt.
Researchers trained adapters for each task and fused them with attention.
Our neighbours painted their house bright yellow, which surprised everyone.
The train was delayed by forty minutes because of a signal failure near the station.
Nothing about the plan was simple, yet the team finished it before the deadline.
Mountains in the north are covered with snow for most of the year.
The museum reopened with a new exhibition of paintings and sculptures.
Farmers hope for rain, while tourists hope for sunshine and clear skies.
If the experiment fails, we will change the parameters and try again.
Reading slowly and carefully is often faster than reading twice.
Héllo Wörld, naïve café, résumé and Ångström come with accents.
Crème brûlée is a dessert; Dvořák was a composer; Łódź is a city.
Привет, мир! Γειά σου Κόσμε. 我爱北京天安门。 한국어 텍스트.
Supercalifragilisticexpialidocious is a long word, and so is antidisestablishmentarianism.
Emails like user@example.com and links like https://example.com/path appear in text.
Numbers: 3.14159, 1,000,000.50, 10^6, 1/2 and ½ are all written differently.
"""


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "hard"
    out = sys.stdout
    if what == "corpus":
        out.write(CORPUS * 3)
        for t in HARD:  # printable characters only: the corpus is a plain text file
            line = " ".join("".join(c for c in t if c.isprintable()).split())
            if line:
                out.write(line + "\n")
        return
    if what == "hard":
        for t in HARD:
            out.write(json.dumps({"text": t, "pair": t[::-1]}, ensure_ascii=False) + "\n")
        for a, b in PAIRS:
            out.write(json.dumps({"text": a, "pair": b}, ensure_ascii=False) + "\n")
        return
    n, seed = int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    for _ in range(n):
        cells = []
        for _ in range(2):
            k = rng.randint(0, 40)
            cells.append("".join(rng.choice(rng.choice(CLASSES)) for _ in range(k)))
        out.write(json.dumps({"text": cells[0], "pair": cells[1]}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
