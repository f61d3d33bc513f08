/* tests/unit/sha256.c: FIPS 180-4's test vectors, and incremental updates split anywhere equal
 * to one call. sha256_scalar.c runs the same checks with the SHA extensions turned off, so each
 * path is held to the standard, not only to the other. */
#include "sha256.h"

#include <stdlib.h>
#include <string.h>

#include "af.h"
#include "tap.h"

static int digest_is(const void *data, size_t n, const char *want) {
    char out[65];
    af_sha256_hex(data, n, out);
    return !strcmp(out, want);
}

int main(void) {
    diag("SHA extensions %s", sha256_accelerated() ? "in use" : "not in use");
    ok(digest_is("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
       "empty");
    ok(digest_is("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
       "abc");
    const char *m2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    ok(digest_is(m2, strlen(m2),
                 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
       "448 bits (two blocks after padding)");
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    ok(digest_is(a, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
       "a million a's");
    /* every split of 0..300 bytes fed in two or three pieces */
    int good = 1;
    for (int i = 0; i < 300; i++) a[i] = (char)(i * 37 + 11);
    for (int n = 0; n <= 300 && good; n += 7) {
        char one[65], two[65];
        af_sha256_hex(a, (size_t)n, one);
        for (int k = 0; k <= n && good; k += 3) {
            sha256_ctx c;
            sha256_init(&c);
            sha256_update(&c, a, (size_t)k);
            sha256_update(&c, a + k, (size_t)(n - k) / 2);
            sha256_update(&c, a + k + (n - k) / 2, (size_t)(n - k) - (size_t)(n - k) / 2);
            sha256_final(&c, two);
            good = !strcmp(one, two);
        }
    }
    ok(good, "updates split anywhere give the one-call digest");
    free(a);
    return done_testing();
}
