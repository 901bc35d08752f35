#!/usr/bin/env python3
"""Splits a server's CPU samples (`perf script -F comm,ip,sym` of `perf record -C 0 -g`) into the
kernel's TCP work for its writes and everything else, for loadtest/rig-floor.sh.

usage: floor.py PERF_SCRIPT_TEXT COMM_PREFIX CPU_US_PER_MSG
Prints one JSON object: the share of the server's samples in each part, and each part in µs per
delivered message (the rig's CPU per message times the share).
"""
import json
import sys

# What a sample is counted as, by the first of these frames found in its stack (innermost first
# is not needed: a send's stack holds exactly one of the first two).
PARTS = [
    ("tcp", {"tcp_sendmsg"}),  # TCP/IP send and, on loopback, the client's receive path
    ("send_call", {"__do_sys_io_uring_enter", "__x64_sys_sendto", "__x64_sys_writev", "ksys_write"}),
    ("epoll", {"do_epoll_wait", "__x64_sys_epoll_pwait2", "__x64_sys_epoll_wait"}),
    ("feed_read", {"__sys_recvfrom", "ksys_read", "sock_recvmsg"}),
    ("other_kernel", {"entry_SYSCALL_64_after_hwframe", "asm_exc_page_fault", "asm_sysvec_apic_timer_interrupt",
                      "asm_common_interrupt", "ret_from_fork_asm"}),
]


def main() -> None:
    path, prefix, cpu = sys.argv[1], sys.argv[2], float(sys.argv[3])
    counts = {name: 0 for name, _ in PARTS}
    counts["user"] = 0
    total = 0
    comm, stack = None, []

    def flush() -> None:
        nonlocal total
        if comm is None or not comm.startswith(prefix):
            return
        total += 1
        frames = set(stack)
        for name, marks in PARTS:
            if frames & marks:
                counts[name] += 1
                return
        counts["user"] += 1

    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                flush()
                comm, stack = None, []
            elif not line[0].isspace():
                flush()
                comm, stack = line.split()[0], []
            else:
                parts = line.split()
                if len(parts) >= 2:
                    stack.append(parts[1])
    flush()
    out = {"samples": total}
    for name, n in counts.items():
        share = n / total if total else 0.0
        out[name + "_share"] = round(share, 4)
        out[name + "_us_per_msg"] = round(share * cpu, 4)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
