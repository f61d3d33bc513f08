/* curves.h: learning curves (accuracy against training-set size, one curve per method, one
 * panel per task) read from the learning-curve study's TSV and drawn as a PNG
 * (`af-inspect --curves`; scripts/study.sh writes the TSV).
 *
 * The TSV has a header naming at least the columns task, method, size, mean and sd (any order,
 * others ignored: the study's also has seeds); one row per task × method × size. */
#ifndef AF_CURVES_H
#define AF_CURVES_H

#include "af.h"

typedef struct {
    int task, method; /* indices into curves.tasks / curves.methods */
    double size;      /* training examples (> 0: the x axis is logarithmic) */
    double mean, sd;  /* dev accuracy over the seeds */
} curve_point;

typedef struct {
    char **tasks, **methods; /* in order of first appearance: panels left to right, legend */
    int ntasks, nmethods;
    curve_point *p; /* [n] */
    int n;
} curves;

/* Reads path; an error names the file, the line and the column. */
int curves_read(curves *c, const char *path, af_err *e);
void curves_free(curves *c);

/* Where a panel's plot area is, and how it maps data to pixels (for drawing and for tests). */
typedef struct {
    int x0, y0, w, h;      /* plot area: left, top, width, height in pixels */
    double lx_min, lx_max; /* log10 of the sizes at the left and right edges */
    double y_min, y_max;   /* accuracy at the bottom and top edges */
    double y_step;         /* between horizontal grid lines */
} curves_panel;

/* The image's size and task t's panel (0 <= t < c->ntasks). */
void curves_layout(const curves *c, int t, int *width, int *height, curves_panel *p);
/* The pixel of (size, accuracy) in panel p. */
int curves_px(const curves_panel *p, double size);
int curves_py(const curves_panel *p, double acc);
/* Method m's colour (the Okabe-Ito palette, distinct for colour-blind readers). */
void curves_colour(int m, unsigned char rgb[3]);

/* One panel per task side by side: the log-scaled size axis ticked at the sizes measured, the
 * accuracy axis with grid lines, per method a line through the means, a marker on each and an
 * error bar of one sd, and a legend of the methods below. Written atomically. */
int curves_png(const char *path, const curves *c, af_err *e);

#endif
