/* hub.c: the names AdapterHub's files and af's share, the JSON layout export writes (Python's
 * json.dump(indent=2), as AdapterHub's own files), and what counts as an AdapterHub directory. */
#include "hub.h"
#include "tap.h"

#include <cjson/cJSON.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/af-hub-test.XXXXXX";

static void test_names(void) {
    char n[256];
    hub_tensor_name(n, sizeof n, "bert", 0, 3, BERT_SITE_OUT, "sst2", "adapter_up.weight");
    ok(!strcmp(n, "bert.encoder.layer.3.output.adapters.sst2.adapter_up.weight"),
       "adapter tensor: %s", n);
    hub_tensor_name(n, sizeof n, "bert", 0, 0, BERT_SITE_ATTN, "h", "adapter_down.0.bias");
    ok(!strcmp(n, "bert.encoder.layer.0.attention.output.adapters.h.adapter_down.0.bias"),
       "Houlsby's attention-output site: %s", n);
    hub_tensor_name(n, sizeof n, "bert", 1, 11, BERT_SITE_OUT, "a,b", "value.weight");
    ok(!strcmp(n, "bert.encoder.layer.11.output.adapter_fusion_layer.a,b.value.weight"),
       "fusion tensor: %s", n);
    ok(!strcmp(hub_arch_prefix("bert"), "bert") &&
           !strcmp(hub_model_class("bert"), "BertAdapterModel"),
       "BERT's prefix and model class");
}

static void test_json(void) {
    cJSON *j = cJSON_CreateObject(), *c = cJSON_AddObjectToObject(j, "config");
    cJSON_AddItemToObject(c, "leave_out", cJSON_CreateArray());
    cJSON *a = cJSON_AddArrayToObject(c, "list");
    cJSON_AddItemToArray(a, cJSON_CreateNumber(0));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(11));
    cJSON_AddRawToObject(c, "scaling", "1.0");
    cJSON_AddStringToObject(c, "s", "a\"b");
    cJSON_AddNullToObject(j, "model_name");
    cJSON_AddNumberToObject(j, "hidden_size", 768);
    char path[300];
    snprintf(path, sizeof path, "%s/x.json", tmpdir);
    af_err e;
    int rc = hub_write_json(path, j, &e);
    cJSON_Delete(j);
    char *text;
    size_t len;
    rc = rc || af_read_file(path, &text, &len, &e);
    /* what Python writes for the same dict with json.dump(d, f, indent=2), plus a newline */
    const char *want = "{\n  \"config\": {\n    \"leave_out\": [],\n    \"list\": [\n      0,\n"
                       "      11\n    ],\n    \"scaling\": 1.0,\n    \"s\": \"a\\\"b\"\n  },\n"
                       "  \"model_name\": null,\n  \"hidden_size\": 768\n}\n";
    ok(!rc && !strcmp(text, want), "json.dump(indent=2) layout%s%s", rc ? ": " : "",
       rc ? e.msg : "");
    if (!rc && strcmp(text, want)) diag("got:\n%s", text);
    if (!rc) free(text);
}

static void test_is_dir(void) {
    char p[300];
    ok(!hub_is_dir(tmpdir), "a directory without an AdapterHub config is not one");
    snprintf(p, sizeof p, "%s/head_config.json", tmpdir);
    FILE *f = fopen(p, "w");
    if (f) fputs("{}", f), fclose(f);
    ok(hub_is_dir(tmpdir), "one with head_config.json is");
    ok(!hub_is_dir(p), "a file is not");
    af_err e;
    FILE *null = fopen("/dev/null", "w");
    ok(null && hub_describe(tmpdir, null, &e) == -1 && strstr(e.msg, "pytorch_model_head.bin"),
       "a head config without weights: an error naming what is missing (%s)", e.msg);
    if (null) fclose(null);
}

int main(void) {
    if (!mkdtemp(tmpdir)) return 1;
    test_names();
    test_json();
    test_is_dir();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) diag("could not remove %s", tmpdir);
    return done_testing();
}
