# study-paired.awk: from a study's per-seed TSV (task method size seed accuracy), the paired
# differences that say whether fusion helped: per task and size, for attention and weighted
# fusion against the target's own adapter (single) and against head-only, the mean over the
# seeds of (fusion - baseline) on the same subset, its sd, and on how many seeds fusion was ahead.
# Paired by seed, because a seed's subset is shared by every method: the subset's luck cancels.
#
#   awk -f scripts/study-paired.awk scripts/study/study-runs.tsv
BEGIN { FS = "\t" }
NR > 1 {
    k = $1 SUBSEP $3
    if (!(k in seen)) { seen[k] = 1; order[++K] = k }
    acc[$1, $3, $2, $4] = $5
    seeds[$1, $3, $4] = 1
    if (!((k, $4) in sk)) { sk[k, $4] = 1; ns[k]++; sl[k, ns[k]] = $4 }
}
END {
    printf "%-8s %5s  %-22s %8s %7s %6s\n", "task", "size", "comparison", "mean", "sd", "ahead"
    split("attention single|attention head-only|weighted single|weighted head-only", pairs, "|")
    for (i = 1; i <= K; i++) {
        split(order[i], tk, SUBSEP)
        for (p = 1; p <= 4; p++) {
            split(pairs[p], ab, " ")
            n = 0; s = 0; ahead = 0
            for (j = 1; j <= ns[order[i]]; j++) {
                sd_ = sl[order[i], j]
                if (!((tk[1], tk[2], ab[1], sd_) in acc) || !((tk[1], tk[2], ab[2], sd_) in acc)) continue
                d[++n] = acc[tk[1], tk[2], ab[1], sd_] - acc[tk[1], tk[2], ab[2], sd_]
                s += d[n]; ahead += d[n] > 0
            }
            if (!n) continue
            m = s / n; v = 0
            for (j = 1; j <= n; j++) v += (d[j] - m) ^ 2
            sdv = n > 1 ? sqrt(v / (n - 1)) : 0
            printf "%-8s %5s  %-22s %+8.4f %7.4f %3d/%d\n", tk[1], tk[2], ab[1] " - " ab[2], m, sdv, ahead, n
        }
    }
}
