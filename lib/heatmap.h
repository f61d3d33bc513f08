/* heatmap.h: a labelled matrix of values in [0, 1] (af-inspect's fusion weights: rows are
 * layers, columns adapters), shown in a terminal, as CSV or JSON, or as a PNG image.
 *
 * Colours follow matplotlib's viridis (dark violet at 0, yellow at 1): perceptually even and
 * readable in grey and by most colour-blind readers. The scale is fixed at [0, 1], so maps of
 * different files compare; values outside are clamped for colour, printed as they are. */
#ifndef AF_HEATMAP_H
#define AF_HEATMAP_H

#include <stdint.h>
#include <stdio.h>

#include "af.h"

typedef struct cJSON cJSON;

typedef struct {
    char *title; /* shown above the map, or NULL */
    char *group; /* what the map is of (e.g. a gold label), or NULL for everything */
    char *level; /* which fusion of a hierarchical fusion (its name), or NULL: the top one */
    long n;      /* examples averaged (0: not an average) */
    int rows, cols;
    char **row_labels; /* [rows] */
    char **col_labels; /* [cols] */
    double *v;         /* [rows, cols] */
} heatmap;

/* Sizes h with zero values and empty labels. */
void heatmap_init(heatmap *h, int rows, int cols);
void heatmap_free(heatmap *h);
/* Sets *slot to a copy of s with control characters replaced by '?' (labels come from files and
 * end up on terminals). */
void heatmap_label(char **slot, const char *s);

/* viridis at t (clamped to [0, 1]). */
void heatmap_colour(double t, uint8_t rgb[3]);

typedef enum { HM_PLAIN, HM_256, HM_TRUECOLOR } hm_colour;

/* For people: one table per map, each cell a colour (HM_256, HM_TRUECOLOR: ANSI background
 * colours) or shade characters ░▒▓█ (HM_PLAIN) beside the value, and a legend. row_axis and
 * col_axis name the axes ("layer", "adapter"). */
void heatmap_print(FILE *f, const heatmap *maps, int n, const char *row_axis, const char *col_axis,
                   int colour);
/* For programs: "group,ROW_AXIS,COL_AXIS,value" with one line per cell of every map; when a map
 * has a level, "level," comes first. */
void heatmap_csv(FILE *f, const heatmap *maps, int n, const char *row_axis, const char *col_axis);
/* {"rows": [..], "columns": [..], "maps": [{"title", "group", "n", "values": [[..]..]}]}; a map
 * with a level adds "level" and its own "columns". */
cJSON *heatmap_json(const heatmap *maps, int n);
/* The maps stacked top to bottom in one image: title, axis names, row and column labels, each
 * cell in its colour with its value written in it, and a colour legend from 0 to 1. */
int heatmap_png(const char *path, const heatmap *maps, int n, const char *row_axis,
                const char *col_axis, af_err *e);

#endif
