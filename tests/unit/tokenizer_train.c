/* tests/unit/tokenizer_train.c: the BPE vocabulary builder on texts small enough to follow by
 * hand, its order rules, and that it depends on nothing but its input. */
#include "tokenizer_train.h"

#include <stdlib.h>
#include <string.h>

#include "tap.h"

/* The vocabulary built from texts, as one string "a b c ...". */
static const char *build(const char *const *texts, int n, int size, int lower) {
    static char buf[8192];
    tok_options o;
    tok_options_default(&o);
    o.lower = lower;
    tok_trainer *t = tok_train_new(&o);
    af_err e;
    for (int i = 0; i < n; i++)
        if (tok_train_add(t, texts[i], strlen(texts[i]), &e) < 0) {
            snprintf(buf, sizeof buf, "error: %s", e.msg);
            tok_train_free(t);
            return buf;
        }
    char **tok;
    int nt;
    if (tok_train_build(t, size, 2, &tok, &nt, &e) < 0) {
        snprintf(buf, sizeof buf, "error: %s", e.msg);
    } else {
        buf[0] = 0;
        for (int i = 0; i < nt; i++) {
            if (i) strcat(buf, " ");
            strncat(buf, tok[i], sizeof buf - strlen(buf) - 2);
        }
    }
    tok_train_free(t);
    return buf;
}

int main(void) {
    const char *low[] = {"low low low lower lower newest newest newest"};
    /* Characters by count: e 8, w 8 (tie: code point), l 5, o 5, n 3, s 3, t 3, r 2. Pieces
     * are numbered in that order (e=0 ... r=7, ##e=8 ... ##r=15). Pairs: (l, ##o), (##o, ##w),
     * (##w, ##e) all 5: the oldest first piece wins, l=2: "lo". Then (lo, ##w) 5 and (##w, ##e)
     * 5: ##w=9 < lo=16: "##we". Then five pairs of 3, (n, ##e) has the oldest first piece. */
    const char *head = "[PAD] [UNK] [CLS] [SEP] [MASK] e w l o n s t r ##e ##w ##l ##o ##n ##s "
                       "##t ##r ";
    const char *v = build(low, 1, 5 + 16 + 3, 1);
    ok(!strncmp(v, head, strlen(head)),
       "specials, characters by count then code point, then their ## forms: %s", v);
    ok(!strcmp(v + strlen(head), "lo ##we ne"), "the merges, most frequent pair first: %s",
       v + strlen(head));
    const char *again = build(low, 1, 5 + 16 + 3, 1);
    ok(!strcmp(v, again), "the same text gives the same vocabulary");
    v = build(low, 1, 1000, 1);
    ok(strstr(v, " lower") && strstr(v, " newest") && !strstr(v, "  "),
       "with room, frequent words become whole entries: %s", v);
    const char *once[] = {"abc"};
    v = build(once, 1, 1000, 1);
    ok(!strcmp(v, "[PAD] [UNK] [CLS] [SEP] [MASK] a b c ##a ##b ##c"),
       "no pair occurs twice: no merges, fewer entries than asked: %s", v);
    v = build(once, 1, 9, 1);
    ok(!strcmp(v, "[PAD] [UNK] [CLS] [SEP] [MASK] a b ##a ##b"),
       "too small: the rarest characters are left out in pairs: %s", v);
    const char *cased[] = {"Abc abc ABC"};
    v = build(cased, 1, 17, 0);
    ok(strstr(v, " A ") && strstr(v, " a "), "cased: both cases kept: %s", v);
    v = build(cased, 1, 17, 1);
    ok(!strstr(v, " A ") && !strstr(v, "##A") && strstr(v, " a "), "lower-cased: %s", v);
    const char *punct[] = {"don't! don't!"};
    v = build(punct, 1, 100, 1);
    ok(strstr(v, " ' ") && strstr(v, " ! ") && strstr(v, " don") && !strstr(v, "n'"),
       "the basic tokenizer splits before counting: %s", v);
    const char *bad[] = {"ok", "b\xff"};
    v = build(bad, 2, 100, 1);
    ok(!strcmp(v, "error: invalid UTF-8 at byte 2"), "invalid UTF-8: %s", v);
    ok(!strncmp(build(low, 1, 4, 1), "error: ", 7), "fewer than 5 entries is an error");
    char longw[300];
    memset(longw, 'q', 101);
    strcpy(longw + 101, " qq");
    const char *lw[] = {longw};
    v = build(lw, 1, 100, 1);
    ok(!strcmp(v, "[PAD] [UNK] [CLS] [SEP] [MASK] q ##q"),
       "words over 100 characters are not counted (HF makes them [UNK]): %s", v);
    return done_testing();
}
