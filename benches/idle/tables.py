#!/usr/bin/env python3
"""Tables of the idle-capacity benchmark (benches/idle/run.sh) from its raw JSON.

    tables.py OUT LINKDIR...            print one markdown table per link (LINKDIR: under OUT)
    tables.py --detail OUT LINKDIR...   also a table of the absolute numbers per cc and tool
    tables.py --summary OUT LINKDIR...  write OUT/summary.json for these links (prints nothing)
    tables.py --brief FILE.json         one line about one run (run.sh's progress)

A link directory holds link.json (written by run.sh: entry, rate_mbit, ccs, tools, repeat) and
CC-TOOL-KIND-REP.json, KIND bulk or web, TOOL none for the idle baseline. Cells show
`cubic / bbr` (the CCs of link.json, in order): medians of the repeats; ebb's cells add
[min-max] when there is more than one run. The goal column says whether ebb's median met the goal
for each CC: ok, MISS, or - (no data).
"""
import glob, json, math, os, statistics, sys

LINK_GOODPUT = 0.955
INF = math.inf

# (key, row label, goal label, goal test on ebb's median (value, idle) -> bool, or None, format)
ROWS = [
    ("bg_alone_pct", "background alone, % of link", ">= 90 %", lambda v, i: v >= 90, "pct"),
    ("fg_keep_pct", "foreground curl keeps, % of its solo goodput", ">= 95 %",
     lambda v, i: v >= 95, "pct"),
    ("web_p50_ms", "web fetch p50 latency, ms", "<= 1.2x idle",
     lambda v, i: i is not None and v <= 1.2 * i, "ms"),
    ("web_share_pct", "background during web, % of what web leaves", ">= 80 %",
     lambda v, i: v >= 80, "pct"),
    ("recover_fg_s", "back above 85 % after foreground ends, s", "<= 3 s", lambda v, i: v <= 3, "s"),
    ("recover_web_s", "back above 85 % after web ends, s", "<= 3 s", lambda v, i: v <= 3, "s"),
    ("ping_ms", "ping while background alone, ms", "-", None, "ms"),
]
IDLE_OF = {"web_p50_ms": "web_p50_ms", "ping_ms": "ping_ms"}  # rows that show the idle value


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        return {"error": f"unreadable: {e}"}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def runs_of(d):
    """{(cc, tool, kind): {rep: json}}"""
    out = {}
    for p in glob.glob(os.path.join(d, "*-*-*-*.json")):
        parts = os.path.basename(p)[:-5].split("-")
        if len(parts) != 4 or parts[2] not in ("bulk", "web") or not parts[3].isdigit():
            continue
        out.setdefault(tuple(parts[:3]), {})[int(parts[3])] = load(p)
    return out


def ok(r, *keys):
    return r is not None and "error" not in r and all(r.get(k) is not None for k in keys)


def metrics(d):
    """Per cc: {"idle": {...}, "tools": {tool: {metric: [per-run values]}}, "errors": n}."""
    meta = load(os.path.join(d, "link.json"))
    rate = meta["rate_mbit"]
    runs = runs_of(d)
    res = {}
    for cc in meta["ccs"]:
        nb, nw = runs.get((cc, "none", "bulk"), {}), runs.get((cc, "none", "web"), {})
        idle = {"fg_mbit": med(r.get("fg_mbit") for r in nb.values() if ok(r)),
                "ping_ms": med(r.get("ping_p50_ms") for r in nb.values() if ok(r)),
                "web_p50_ms": med(r.get("web_p50_ms") for r in nw.values() if ok(r)),
                "web_mbit": med(r.get("web_mbit") for r in nw.values() if ok(r))}
        tools, errors = {}, sum(1 for r in list(nb.values()) + list(nw.values()) if "error" in r)
        for tool in meta["tools"]:
            b, w = runs.get((cc, tool, "bulk"), {}), runs.get((cc, tool, "web"), {})
            errors += sum(1 for r in list(b.values()) + list(w.values()) if "error" in r)
            m = {k: [] for k, *_ in ROWS}
            for r in b.values():
                if ok(r, "bg_alone_mbit"):
                    m["bg_alone_pct"].append(100 * r["bg_alone_mbit"] / rate)
                if ok(r, "fg_mbit") and idle["fg_mbit"]:
                    m["fg_keep_pct"].append(100 * r["fg_mbit"] / idle["fg_mbit"])
                if ok(r):
                    m["recover_fg_s"].append(INF if r.get("recover_s") is None else r["recover_s"])
                if ok(r, "ping_p50_ms"):
                    m["ping_ms"].append(r["ping_p50_ms"])
            for r in w.values():
                if ok(r, "web_p50_ms"):
                    m["web_p50_ms"].append(r["web_p50_ms"])
                if ok(r, "bg_web_share"):
                    m["web_share_pct"].append(100 * r["bg_web_share"])
                if ok(r):
                    m["recover_web_s"].append(INF if r.get("recover_s") is None else r["recover_s"])
            tools[tool] = {"runs": {"bulk": len(b), "web": len(w)}, "metrics": m,
                           "raw": {"bulk": b, "web": w}}
        res[cc] = {"idle": idle, "tools": tools, "errors": errors}
    return meta, res


def fmt(v, kind):
    if v is None:
        return "-"
    if v == INF:
        return "never"
    return f"{v:.1f}" if kind == "s" else f"{v:.0f}"


def cell(vals, kind, ranged):
    if not vals:
        return "-"
    s = fmt(med(vals), kind)
    if ranged and len(vals) > 1:
        s += f" [{fmt(min(vals), kind)}-{fmt(max(vals), kind)}]"
    return s


def goal(row, ccres, tool="ebb"):
    key, _, _, test, _ = row
    if test is None:
        return None
    out = {}
    for cc, r in ccres.items():
        vals = r["tools"].get(tool, {}).get("metrics", {}).get(key, [])
        idle = r["idle"].get(IDLE_OF.get(key, ""), None)
        out[cc] = None if not vals else bool(test(med(vals), idle))
    return out


def header(meta):
    return (f"### {meta['rate']} / {meta['delay']} RTT / {meta['qlat']} queue / "
            f"{meta['loss']} loss")


def table(d, detail=False):
    meta, res = metrics(d)
    ccs, tools = meta["ccs"], meta["tools"]
    lines = [header(meta), ""]
    reps = meta.get("repeat", 1)
    lines.append(f"cells: {' / '.join(ccs)}, " +
                 (f"medians of {reps} runs, ebb: median [min-max]" if reps > 1 else "one run each"))
    lines.append("")
    lines.append(f"| {meta['rate']} | " + " | ".join(tools) + " | goal (ebb) |")
    lines.append("|---" * (len(tools) + 2) + "|")
    for row in ROWS:
        key, label, glabel, _, kind = row
        if key in IDLE_OF:
            label += " (idle: " + " / ".join(fmt(res[cc]["idle"][IDLE_OF[key]], kind)
                                             for cc in ccs) + ")"
        cells = []
        for tool in tools:
            cells.append(" / ".join(cell(res[cc]["tools"][tool]["metrics"][key], kind,
                                         tool == "ebb") for cc in ccs))
        g = goal(row, res)
        if g is not None and "ebb" in tools:
            glabel += " (" + " / ".join("-" if g[cc] is None else ("ok" if g[cc] else "MISS")
                                        for cc in ccs) + ")"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {glabel} |")
    errs = sum(res[cc]["errors"] for cc in ccs)
    if errs:
        lines.append(f"\n{errs} run(s) failed: see the JSON files with an \"error\" in {d}")
    if detail:
        lines += ["", "| cc | tool | bg alone | fg alone / with bg | bg during fg | web / bg during web "
                  "(web leaves) | web p50 / p90 ms | ping p50 ms |", "|---" * 8 + "|"]
        for cc in ccs:
            idle = res[cc]["idle"]
            for tool in tools:
                raw = res[cc]["tools"][tool]["raw"]

                def m(kind, k):
                    return fmt(med(r.get(k) for r in raw[kind].values() if ok(r)), "s")
                lines.append(
                    f"| {cc} | {tool} | {m('bulk', 'bg_alone_mbit')} | {fmt(idle['fg_mbit'], 's')}"
                    f" / {m('bulk', 'fg_mbit')} | {m('bulk', 'bg_during_mbit')} | "
                    f"{m('web', 'web_mbit')} / {m('web', 'bg_web_mbit')} ({m('web', 'web_left_mbit')})"
                    f" | {m('web', 'web_p50_ms')} / {m('web', 'web_p90_ms')} | "
                    f"{m('bulk', 'ping_p50_ms')} |")
        lines.append("(Mbit/s unless marked)")
    return "\n".join(lines)


def jsonable(v):
    if isinstance(v, float) and v == INF:
        return None
    return None if v is None else round(v, 2)


def summary(out, dirs):
    links = []
    for d in dirs:
        meta, res = metrics(os.path.join(out, d))
        ccs = {}
        for cc, r in res.items():
            tools = {}
            for tool, t in r["tools"].items():
                ms = {}
                for key, vals in t["metrics"].items():
                    ms[key] = {"median": jsonable(med(vals)), "min": jsonable(min(vals)) if vals else None,
                               "max": jsonable(max(vals)) if vals else None,
                               "runs": [jsonable(v) for v in vals]}
                tools[tool] = {"runs": t["runs"], "metrics": ms}
            goals = {}
            for row in ROWS:
                g = goal(row, {cc: r})
                if g is not None:
                    goals[row[0]] = g[cc]
            ccs[cc] = {"idle": {k: jsonable(v) for k, v in r["idle"].items()}, "tools": tools,
                       "ebb_goals": goals if "ebb" in r["tools"] else None, "errors": r["errors"]}
        links.append({"dir": d, **meta, "ccs": ccs})
    doc = {"rows": {k: {"label": l, "goal": g} for k, l, g, *_ in ROWS},
           "notes": "medians over repeats; recover_* null median = never; link goodput capacity = "
                    f"{LINK_GOODPUT} x nominal rate", "links": links}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(doc, f, indent=1)


def brief(path):
    r = load(path)
    if "error" in r:
        return f"ERROR {r['error']}"
    s = []
    for k, lab in (("bg_alone_mbit", "bg alone"), ("fg_mbit", "fg"), ("bg_during_mbit", "bg during"),
                   ("web_mbit", "web"), ("bg_web_mbit", "bg during web"), ("web_p50_ms", "web p50 ms"),
                   ("ping_p50_ms", "ping ms"), ("recover_s", "recover s")):
        if k in r:
            s.append(f"{lab} {'never' if r[k] is None else r[k]}")
    if r.get("bg_exit"):
        s.append(f"BACKGROUND EXITED {r['bg_exit']}")
    return ", ".join(s)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--brief"]:
        print(brief(args[1]))
    elif args[:1] == ["--summary"]:
        summary(args[1], args[2:])
    else:
        detail = args[:1] == ["--detail"]
        if detail:
            args = args[1:]
        out, dirs = args[0], args[1:]
        print("\n\n".join(table(os.path.join(out, d), detail) for d in dirs))
