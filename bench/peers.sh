# bench/peers.sh -- sourced by run.sh, redis.sh and icount.sh: where Debian
# puts the peer allocators' preload libraries.

LIBDIR="/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
find_lib() { # find_lib NAME...: the first that exists, in LIBDIR or the ld.so cache
    local n p
    for n in "$@"; do
        [[ -f "$LIBDIR/$n" ]] && { echo "$LIBDIR/$n"; return 0; }
        p="$(ldconfig -p 2>/dev/null | awk -v n="$n" '$1 == n { print $NF; exit }')"
        [[ -n "$p" && -f "$p" ]] && { echo "$p"; return 0; }
    done
    return 1
}
peer_default() { # peer_default ALLOC -> a peer's library (fails when not installed)
    case "$1" in
        mimalloc) find_lib libmimalloc.so.2 libmimalloc.so ;;
        jemalloc) find_lib libjemalloc.so.2 libjemalloc.so ;;
        tcmalloc) find_lib libtcmalloc_minimal.so.4 libtcmalloc.so.4 libtcmalloc_minimal.so ;;
        tbbmalloc) find_lib libtbbmalloc_proxy.so.2 libtbbmalloc_proxy.so ;;
        *) return 1 ;;
    esac
}
