# bench/stats.sh -- sourced by prof_cost.sh and ceiling.sh: medians of the
# interleaved runs they record one per line.

# Median of column c of a file (the mean of the two middle values for an
# even count), "-" entries left out; "-" when there is none.
med() { awk -v c="$2" '$c != "-" { print $c }' "$1" | sort -g |
  awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# Paired ratios file b over file a (column 1 each), rep by rep: "median lowest highest".
paired() { paste -d' ' "$1" "$2" | awk '$1 != "-" && $3 != "-" && $1 > 0 { print $3 / $1 }' | sort -g |
  awk '{ v[NR] = $1 } END { if (NR == 0) print "- - -"; else print ((NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[1], v[NR] }'; }
