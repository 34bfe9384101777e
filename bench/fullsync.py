"""Full sync: N contacts from the Tribe (or Lime) emulator into the APSIS emulator, each in its own
process, through a real daemon; then the same sync as a plain sequential loop
(:mod:`bench.naive`) against fresh emulators with the same settings, so that syncd ÷ naive is
measured side by side in one run.

    python -m bench fullsync [--contacts 5000] [--latency 0] [--budget documented|unlimited]
                             [--no-consents] [--no-naive] [--page-size 200]
                             [--tribe-page-cap 100] [--source tribe|lime]

Prints records/s (every person, incl. those skipped by the conditions), profiles written/s,
APSIS requests per written profile (from the emulator's ``/_emulator/stats``), the share of
the bound the budget allows (100 req/s ÷ requests per profile; documented budget only), the
daemon's peak RSS (VmHWM) and its CPU µs per record.

The sandbox rules (conditions, 3 fields, one consent, one tag) are used; ``--no-consents``
keeps fields only, so that a new profile costs exactly one request and the bound is clean.
Full size: ``--contacts 20000``.
"""

from __future__ import annotations

import argparse

from bench.common import (
    apsis_budget,
    base_config,
    cpu_delta,
    daemon_process,
    destination_config,
    emulator_process,
    emulator_stats,
    proc_status,
    requests_between,
    run_full_sync,
    sync_rules,
    thread_cpu,
)

DEFAULT_CONTACTS = 5_000


#: The source emulator's page-cap settings (no next link) and the key of its person lists.
PAGE_CAP = {"tribe": ("server_paging", "Relation_Person"), "lime": ("page_cap", "person")}


def measure(contacts: int, latency: float = 0.0, budget: str = "documented",
            consents: bool = True, page_size: int | None = None,
            tribe_page_cap: int | None = None, source: str = "tribe") -> dict:
    settings = apsis_budget(budget)
    cap_setting, person_list = PAGE_CAP[source]
    capped = {cap_setting: tribe_page_cap, "next_links": False} if tribe_page_cap else None
    with emulator_process(source, contacts=contacts, latency=latency, settings=capped) as (
            src_cls, src, src_url, _), \
            emulator_process("apsis", latency=latency, settings=settings) as (
                dst_cls, dst, dst_url, _):
        rules = sync_rules(src_cls, consents=consents, page_size=page_size)
        config = base_config(src_cls.sandbox_config(src), destination_config(dst_cls, dst, budget),
                             rules)
        with daemon_process(config) as (proc, client, _):
            before, threads_before = proc_status(proc.pid), thread_cpu(proc.pid)
            stats_before, src_before = emulator_stats(dst_url), emulator_stats(src_url)
            run = run_full_sync(client)
            stats_after, src_after = emulator_stats(dst_url), emulator_stats(src_url)
            after, threads_after = proc_status(proc.pid), thread_cpu(proc.pid)
    seconds = run["ended_at"] - run["started_at"]
    written = (run.get("created") or 0) + (run.get("updated") or 0)
    return summarize("syncd", contacts, budget, seconds, run["processed"], written,
                     run.get("failed") or 0, stats_before, stats_after, status=run["status"],
                     peak_rss_mb=after["VmHWM"] / 1024, cpu_s=after["cpu"] - before["cpu"],
                     latency=latency, consents=consents,
                     cpu_by_thread=cpu_delta(threads_before, threads_after),
                     source=source, source_requests=requests_between(src_before, src_after),
                     **person_pages(src_before, src_after, run.get("total") or run["processed"],
                                    page_size or 200, tribe_page_cap, person_list))


def person_pages(before: dict, after: dict, persons: int, page_size: int,
                 cap: int | None, person_list: str = "Relation_Person") -> dict:
    """Person-list requests of the run against the fewest that can read ``persons`` (a page
    of ``min(page_size, cap)`` rows each): paging on past short pages costs the final empty
    page only."""
    def count(stats: dict, key: str) -> int:
        return int((stats.get(key) or {}).get(person_list, 0))

    rows = min(page_size, cap) if cap else page_size
    return {"person_pages": count(after, "list_requests") - count(before, "list_requests"),
            "empty_person_pages": count(after, "empty_pages") - count(before, "empty_pages"),
            "fewest_person_pages": -(-persons // rows), "tribe_page_cap": cap}


def summarize(who: str, contacts: int, budget: str, seconds: float, processed: int,
              written: int, failed: int, stats_before: dict, stats_after: dict,
              **extra) -> dict:
    total = requests_between(stats_before, stats_after)
    throttled = requests_between(stats_before, stats_after, "429")
    ok = total - throttled
    per_profile = ok / written if written else float("nan")
    out = {
        "who": who, "contacts": contacts, "budget": budget, "seconds": seconds,
        "processed": processed, "written": written, "failed": failed,
        "records_per_s": processed / seconds if seconds else 0.0,
        "profiles_per_s": written / seconds if seconds else 0.0,
        "requests": total, "throttled": throttled,
        "requests_per_profile": per_profile,
        "all_requests_per_profile": total / written if written else float("nan"),
    }
    if budget == "documented" and written:
        out["bound_profiles_per_s"] = apsis_budget(budget)["requests_per_second"] / per_profile
        out["share_of_bound"] = out["profiles_per_s"] / out["bound_profiles_per_s"]
    out.update(extra)
    if "cpu_s" in out:
        out["cpu_us_per_record"] = out["cpu_s"] / max(1, processed) * 1e6
    return out


def report(r: dict) -> None:
    line = (f"  {r['who']:5}: {r['contacts']:,} contacts, budget {r['budget']}: "
            f"{r.get('status', 'completed')} in {r['seconds']:.1f} s; "
            f"{r['records_per_s']:,.0f} records/s, {r['profiles_per_s']:,.1f} profiles/s "
            f"({r['written']:,} written, {r['failed']} failed); "
            f"{r['requests_per_profile']:.2f} APSIS requests/profile "
            f"({r['throttled']} answered 429)")
    print(line)
    if "share_of_bound" in r:
        print(f"         bound {r['bound_profiles_per_s']:.1f} profiles/s "
              f"(100 req/s ÷ {r['requests_per_profile']:.2f}); achieved "
              f"{r['share_of_bound']:.0%} of it")
    if "person_pages" in r:
        extra = r["person_pages"] - r["fewest_person_pages"]
        print(f"         {r.get('source', 'tribe').title()} person pages {r['person_pages']} "
              f"({r['empty_person_pages']} "
              f"empty) for {r['fewest_person_pages']} needed at "
              f"{'a cap of ' + str(r['tribe_page_cap']) if r['tribe_page_cap'] else 'no cap'}"
              f": {extra} extra")
    if "source_requests" in r:
        print(f"         {r['source'].title()} requests {r['source_requests']:,} "
              f"({r['source_requests'] / max(1, r['processed']):.3f} per record)")
    if "peak_rss_mb" in r:
        print(f"         daemon peak RSS {r['peak_rss_mb']:.0f} MB, CPU "
              f"{r['cpu_us_per_record']:,.0f} µs/record ({r['cpu_s']:.1f} s)")
    if r.get("cpu_by_thread"):
        top = list(r["cpu_by_thread"].items())[:6]
        print("         daemon CPU by thread: " + ", ".join(f"{k} {v:.1f} s" for k, v in top))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench fullsync")
    parser.add_argument("--contacts", type=int, default=DEFAULT_CONTACTS,
                        help=f"persons in the CRM (default {DEFAULT_CONTACTS:,}; full: 20000)")
    parser.add_argument("--source", choices=sorted(PAGE_CAP), default="tribe",
                        help="the CRM emulator the full sync reads (default tribe)")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds every emulator answer is delayed (e.g. 0.02)")
    parser.add_argument("--budget", choices=("documented", "unlimited"), default="documented")
    parser.add_argument("--no-consents", action="store_true",
                        help="fields only (no consent, no tag): 1 request per new profile")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive loop")
    parser.add_argument("--page-size", type=int, default=None,
                        help="integration page_size (default: syncd's default)")
    parser.add_argument("--tribe-page-cap", type=int, default=None,
                        help="the CRM emulator answers at most this many rows a page, with no "
                             "next link (paging cost on short pages)")
    args = parser.parse_args(argv)
    consents = not args.no_consents
    print(f"full sync: {args.contacts:,} {args.source} contacts, latency {args.latency} s, budget "
          f"{args.budget}, {'sandbox rules' if consents else 'fields only'}")
    result = measure(args.contacts, args.latency, args.budget, consents, args.page_size,
                     args.tribe_page_cap, args.source)
    report(result)
    if not args.no_naive:
        from bench import naive

        plain = naive.measure(args.contacts, args.latency, args.budget, consents, args.source)
        report(plain)
        result["naive"] = plain
        result["ratio_vs_naive"] = (result["profiles_per_s"] / plain["profiles_per_s"]
                                    if plain["profiles_per_s"] else float("nan"))
        print(f"  syncd ÷ naive (profiles/s, same N, latency, budget, rules): "
              f"{result['ratio_vs_naive']:.2f}")
    n = f"{args.contacts // 1000}k" if args.contacts >= 1000 else str(args.contacts)
    tag = ("lime, " if args.source == "lime" else "") + f"{n}, {args.budget}" + (
        ", fields only" if args.no_consents else "")
    rows = [("fullsync", f"records/s ({tag})", f"{result['records_per_s']:,.0f}", "-", None),
            ("fullsync", f"profiles/s ({tag})", f"{result['profiles_per_s']:,.1f}", "-", None),
            ("fullsync", "APSIS requests/profile", f"{result['requests_per_profile']:.2f}",
             "-", None)]
    if "share_of_bound" in result:
        rows.append(("fullsync", "share of budget bound", f"{result['share_of_bound']:.0%}",
                     "-", None))
    if "ratio_vs_naive" in result:
        rows.append(("fullsync", "syncd ÷ naive (profiles/s)",
                     f"{result['ratio_vs_naive']:.2f}", "-", None))
    rows.append(("fullsync", f"{args.source.title()} person pages beyond the fewest",
                 str(result["person_pages"] - result["fewest_person_pages"]), "≤ 1",
                 result["person_pages"] - result["fewest_person_pages"] <= 1))
    rows.append(("fullsync", "daemon peak RSS", f"{result['peak_rss_mb']:.0f} MB", "-", None))
    rows.append(("fullsync", "daemon CPU/record", f"{result['cpu_us_per_record']:,.0f} µs",
                 "-", None))
    result["table"] = rows
    return result


if __name__ == "__main__":
    main()
