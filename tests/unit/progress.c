/* progress.c: the progress line (content, throttling, terminal vs plain), evaluation summaries,
 * and the JSONL log, on a fake clock and in-memory streams. */
#include "progress.h"
#include "tap.h"

#include <cjson/cJSON.h>
#include <string.h>
#include <unistd.h>

static double fake_t;
static double fake_now(void) {
    return fake_t;
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* A progress on an in-memory stream and the fake clock; *buf holds what was written. */
typedef struct {
    progress p;
    FILE *f;
    char *buf;
    size_t len;
} rig;

static void rig_init(rig *r, int tty, int quiet, long done) {
    r->f = open_memstream(&r->buf, &r->len);
    fake_t = 1000;
    progress_init(&r->p, r->f, quiet, 2, 10, done);
    r->p.now = fake_now;
    r->p.t_start = r->p.t_last = fake_t;
    r->p.tty = tty;
    r->p.width = 0;
}

static void rig_free(rig *r) {
    fclose(r->f);
    free(r->buf);
}

static void test_line(void) {
    rig r;
    rig_init(&r, 0, 0, 0);
    progress_epoch(&r.p, 1);
    ok(isnan(progress_mean_loss(&r.p)), "no loss before the first step");
    double losses[] = {0.9, 0.6, 0.3};
    for (int i = 0; i < 3; i++) {
        fake_t += 4;
        progress_step(&r.p, 32, losses[i], 5e-5);
    }
    char line[512];
    progress_format(&r.p, line, sizeof line);
    /* 96 examples in 12 s = 8.0 ex/s; 4 s a step, 7 steps left = 28 s */
    ok(strcmp(line, "epoch 1/2  step 3/10  30%  8.0 ex/s  loss 0.6000  lr 5.00e-05  ETA 28s") == 0,
       "line: %s", line);
    fflush(r.f);
    ok(r.len == 0, "plain output: nothing before the interval has passed");

    progress_pause(&r.p);
    fake_t += 100;
    progress_format(&r.p, line, sizeof line);
    ok(strstr(line, "8.0 ex/s") && strstr(line, "ETA 28s"), "a pause does not count: %s", line);
    progress_resume(&r.p);
    fake_t += 20; /* 20 s more for one step: 128 ex in 32 s = 4.0 ex/s, 8 s a step, 6 left */
    progress_step(&r.p, 32, 0.2, 4e-5);
    fflush(r.f);
    ok(count(r.buf, "\n") == 1 && strstr(r.buf, "step 4/10  40%  4.0 ex/s") &&
           strstr(r.buf, "ETA 48s"),
       "a plain line once the interval passed: %s", r.buf);
    ok(!strchr(r.buf, '\r') && !strchr(r.buf, '\033'), "no control characters when not a tty");
    fake_t += 1;
    progress_step(&r.p, 32, 0.2, 4e-5);
    fflush(r.f);
    ok(count(r.buf, "\n") == 1, "at most one plain line per interval");

    progress_epoch(&r.p, 2);
    ok(isnan(progress_mean_loss(&r.p)), "a new epoch restarts the running loss");
    progress_done(&r.p);
    fflush(r.f);
    ok(count(r.buf, "\n") == 2 && strstr(r.buf, "epoch 2/2  step 5/10"),
       "done prints the last state");
    rig_free(&r);
}

static void test_tty(void) {
    rig r;
    rig_init(&r, 1, 0, 0);
    progress_epoch(&r.p, 1);
    fake_t += 1;
    progress_step(&r.p, 8, 1.0, 1e-4);
    fake_t += 0.01;
    progress_step(&r.p, 8, 1.0, 1e-4);
    fflush(r.f);
    ok(count(r.buf, "\r") == 1 && count(r.buf, "\033[K") == 1 && !strchr(r.buf, '\n'),
       "terminal: rewritten in place, at most 10 times a second");
    progress_eval_info ev = {.dev_loss = NAN,
                             .m = {.n = 5, .accuracy = 0.8, .f1 = 0.75, .mcc = 0.5}};
    progress_eval_fill(&r.p, &ev);
    progress_eval(&r.p, &ev);
    fflush(r.f);
    ok(strstr(r.buf, "\r\033[Kdev epoch 1 step 2:  accuracy 0.8000  f1 0.7500  mcc 0.5000"
                     "  (5 examples)\n") != NULL,
       "an evaluation clears the line and prints its own");
    fake_t += 0.01;
    progress_step(&r.p, 8, 1.0, 1e-4);
    fflush(r.f);
    ok(strstr(r.buf, "examples)\n\repoch 1/2  step 3/10") != NULL,
       "the progress line comes back at the next step");
    r.p.width = 20;
    fake_t += 1;
    progress_step(&r.p, 8, 1.0, 1e-4);
    fflush(r.f);
    ok(strstr(r.buf, "\repoch 1/2  step 4/1\033[K") != NULL, "cut to the terminal width");
    progress_done(&r.p);
    fflush(r.f);
    ok(r.buf[r.len - 1] == '\n', "done ends the line");
    rig_free(&r);
}

static void test_quiet_and_resume(void) {
    rig r;
    rig_init(&r, 1, 1, 0);
    progress_epoch(&r.p, 1);
    for (int i = 0; i < 10; i++) {
        fake_t += 100;
        progress_step(&r.p, 8, 1.0, 1e-4);
    }
    progress_eval_info ev = {.dev_loss = 1, .m = {.n = 1}};
    progress_eval(&r.p, &ev);
    progress_done(&r.p);
    fflush(r.f);
    ok(r.len == 0, "quiet: nothing written");
    rig_free(&r);

    rig_init(&r, 0, 0, 6);
    progress_epoch(&r.p, 2);
    fake_t += 10;
    progress_step(&r.p, 8, 1.0, 1e-4);
    char line[512];
    progress_format(&r.p, line, sizeof line);
    ok(strstr(line, "step 7/10  70%") && strstr(line, "ETA 30s"),
       "resumed at step 6: percent of the run, ETA from this process's pace: %s", line);
    rig_free(&r);

    char b[32];
    progress_format_duration(45, b, sizeof b);
    ok(strcmp(b, "45s") == 0, "45s");
    progress_format_duration(133, b, sizeof b);
    ok(strcmp(b, "2m13s") == 0, "2m13s");
    progress_format_duration(3720, b, sizeof b);
    ok(strcmp(b, "1h02m") == 0, "1h02m");
    progress_format_duration(NAN, b, sizeof b);
    ok(strcmp(b, "?") == 0, "unknown duration: ?");
}

static void test_note(void) {
    rig r;
    rig_init(&r, 1, 0, 0);
    progress_epoch(&r.p, 1);
    fake_t += 1;
    progress_step(&r.p, 8, 1.0, 1e-4);
    progress_note(&r.p, "passes of %d examples", 8);
    fflush(r.f);
    ok(strstr(r.buf, "\r\033[Kpasses of 8 examples\n") != NULL,
       "a note clears the terminal's progress line and ends its own");
    fake_t += 1;
    progress_step(&r.p, 8, 1.0, 1e-4);
    fflush(r.f);
    ok(strstr(r.buf, "examples\n\repoch 1/2  step 2/10") != NULL,
       "the progress line comes back after a note");
    rig_free(&r);

    rig_init(&r, 0, 0, 0);
    progress_note(&r.p, "plain %s", "note");
    fflush(r.f);
    ok(strcmp(r.buf, "plain note\n") == 0, "plain output: the note alone: %s", r.buf);
    rig_free(&r);

    rig_init(&r, 0, 1, 0);
    progress_note(&r.p, "hidden");
    fflush(r.f);
    ok(r.len == 0, "quiet: no note");
    rig_free(&r);
}

static void test_eval_json(void) {
    progress_eval_info ev = {.epoch = 3,
                             .step = 640,
                             .examples = 20480,
                             .elapsed = 81.25,
                             .lr = 4.47e-05,
                             .train_loss = 0.1,
                             .task = "st\"s\nb",
                             .dev_loss = NAN,
                             .best = 1};
    ev.m = (metrics_result){.n = 10,
                            .kind = METRICS_REGRESSION,
                            .pearson = 0.875,
                            .spearman = 1.0 / 3,
                            .mse = INFINITY,
                            .accuracy = NAN,
                            .f1 = NAN,
                            .mcc = NAN};
    char buf[1024];
    progress_eval_json(&ev, buf, sizeof buf);
    ok(strcmp(buf, "{\"epoch\":3,\"step\":640,\"examples\":20480,\"elapsed\":81.25,\"lr\":4.47e-05,"
                   "\"train_loss\":0.1,\"task\":\"st\\\"s\\nb\",\"n\":10,\"dev_loss\":null,"
                   "\"pearson\":0.875,\"spearman\":0.3333333333333333,\"mse\":null,"
                   "\"best\":true}") == 0,
       "json: %s", buf);
    cJSON *j = cJSON_Parse(buf);
    ok(j && cJSON_GetObjectItem(j, "spearman")->valuedouble == 1.0 / 3,
       "json parses and numbers round-trip");
    cJSON_Delete(j);

    progress_eval_format(&ev, buf, sizeof buf);
    ok(strcmp(buf, "dev epoch 3 step 640 [st\"s\nb]:  pearson 0.8750  spearman 0.3333  mse inf"
                   "  (10 examples)  best") == 0,
       "summary for regression: %s", buf);
}

static void test_log(void) {
    char path[] = "/tmp/af-progress-test-XXXXXX";
    close(mkstemp(path));
    progress_log *l;
    af_err e;
    progress_eval_info ev = {.epoch = 1, .dev_loss = 0.5, .m = {.n = 4, .accuracy = 0.5}};
    ok(progress_log_open(&l, path, 0, &e) == 0, "log opened");
    ok(progress_log_write(l, &ev, &e) == 0, "first evaluation logged");
    char *data;
    size_t len;
    af_read_file(path, &data, &len, &e);
    ok(count(data, "\n") == 1 && strstr(data, "\"accuracy\":0.5"), "flushed at once: %s", data);
    free(data);
    ev.epoch = 2;
    progress_log_write(l, &ev, &e);
    ok(progress_log_close(l, &e) == 0, "log closed");
    ok(progress_log_open(&l, path, 1, &e) == 0, "reopened to append");
    ev.epoch = 3;
    progress_log_write(l, &ev, &e);
    progress_log_close(l, &e);
    af_read_file(path, &data, &len, &e);
    int good = count(data, "\n") == 3;
    for (char *line = strtok(data, "\n"); line && good; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        good = j && cJSON_IsNumber(cJSON_GetObjectItem(j, "epoch"));
        cJSON_Delete(j);
    }
    ok(good, "three lines, each a JSON object");
    free(data);
    unlink(path);
    ok(progress_log_open(&l, "/nonexistent/dir/log", 0, &e) == -1 &&
           strstr(e.msg, "/nonexistent/dir/log: cannot open log"),
       "unopenable log: %s", e.msg);
    ok(progress_log_open(&l, "/dev/full", 0, &e) == 0 && progress_log_write(l, &ev, &e) == -1 &&
           strstr(e.msg, "/dev/full: cannot write log"),
       "write errors reported: %s", e.msg);
    progress_log_close(l, &e);
}

int main(void) {
    test_line();
    test_tty();
    test_quiet_and_resume();
    test_note();
    test_eval_json();
    test_log();
    return done_testing();
}
