"""Human-readable outputs of an evaluation, and side-by-side comparison of runs.

- `write_report(out, results, records)`: report.md (protocol, category mapping with counts, per-category
  tables with bootstrap CIs, accuracy vs history length, op-level metrics, efficiency) and PNG plots
  (matplotlib's Agg backend: no display needed).
- `summary_table(results)`: the compact table `memrl eval` prints.
- `load_run(path)` / `compare(paths)`: `memrl eval compare RUN_A RUN_B ...`. Differences are paired over
  the questions both runs answered (from each run's predictions.jsonl), with percentile bootstrap CIs.
  Malformed files raise `DataError` naming the file (and line).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memrl.data.io import DataError, atomic_write, iter_jsonl
from memrl.eval.metrics import ANSWER_METRICS, paired_difference, question_scores

OVERALL_ROWS = (("overall", "overall"), ("overall_excl_adversarial", "overall excl. adversarial"),
                ("overall_all", "all questions"))
# Protocol fields that fix which questions are scored and how they are grouped: runs that differ in any of them
# are not compared (a difference over other questions is not a difference between the methods).
SAME_QUESTIONS_FIELDS = ("benchmark", "data_fingerprint", "split", "max_questions_per_conversation",
                         "skipped_categories", "num_questions", "category_key", "exclude_from_overall",
                         "adversarial_categories")
# Fields that may differ on purpose (what is compared) but change what the numbers mean: compare notes them.
COMPARABLE_FIELDS = ("candidates", "judge")


def fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def fmt_ci(mean: Any, ci: Sequence[float] | None, digits: int = 3) -> str:
    if mean is None:
        return "n/a"
    return f"{fmt(mean, digits)} [{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]" if ci else fmt(mean, digits)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _headline_metric(results: dict[str, Any]) -> str:
    metrics = list(results["metrics"])
    for m in ("locomo_f1", "timedial_acc", "judge", "em"):
        if m in metrics:
            return m
    return metrics[0]


# ---- report.md + plots ---------------------------------------------------------------------------------------
def write_report(out: str | Path, results: dict[str, Any], records: Sequence[dict[str, Any]]) -> Path:
    out = Path(out)
    plots = write_plots(out, results)
    p = results["protocol"]
    metrics = list(results["metrics"])
    lines = [f"# Evaluation: {p['answerer']['name']} on {p['name']}", ""]
    intervals = (f"intervals are {int(p['bootstrap']['level'] * 100)}% percentile bootstraps over questions "
                 f"({p['bootstrap']['samples']} resamples)" if p["bootstrap"]["samples"] else
                 "no confidence intervals (bootstrap_samples=0)")
    lines += [(f"{p['num_questions']} questions in {p['num_conversations']} conversation(s) "
              f"(benchmark `{p['benchmark']}`, split `{p['split']}`). Every metric is on a 0-1 scale; "
              f"{intervals}. Overall = {p['overall']}."), ""]
    lines += ["## Protocol", ""]
    rows = [
        ("data", (f"{'`' + p['data'] + '`' if p['data'] else 'conversations passed in memory'} "
                 f"(fingerprint {p['data_fingerprint']})")),
        ("split", f"{p['split']} {p['split_definition'] or ''}".strip()),
        ("conversations", ", ".join(p["conversations"][:12]) + (" ..." if len(p["conversations"]) > 12 else "")),
        ("answer policy", (f"{p['answerer']['spec'] or p['answerer']['name']} ({p['answerer']['kind']}), "
                          f"mode {p['answerer']['mode']}, prompt {p['answerer']['prompt'] or 'n/a'}, "
                          f"frozen during eval; RL-trained: {p['answerer']['trained']}")),
        ("manager", f"{p['manager']['spec'] or p['manager']['name']} ({p['manager']['kind']})"),
        ("memory bank", p["memory_bank"]),
        ("candidates", ", ".join(f"{k} {v}" for k, v in p["candidates"].items() if v is not None)),
        ("question time", p["question_time"]),
        ("judge", json.dumps(p["judge"]) if p["judge"] else "none"),
        ("seeds", f"{p['seeds_run']} of {p['seeds']} (temperature {p['temperature']})"),
        ("history length", p["history_length"]),
        ("memrl", f"{p['memrl_version']}, {p['created']}"),
    ] + [("oracle" if n.startswith("oracle") else "note", n) for n in p.get("notes") or []]
    lines += _table(["field", "value"], rows) + [""]

    lines += ["## Categories", "", (f"Keyed by `{p['category_key']}`; excluded from overall: "
              f"{p['exclude_from_overall'] or 'none'}; adversarial: {p['adversarial_categories']}."), ""]
    cats = results["counts"]["by_category"]
    lines += _table(["key", "name", "questions"], [(k, v["name"], v["n"]) for k, v in cats.items()]) + [""]

    lines += ["## Results", "", (f"Mean [{int(p['bootstrap']['level'] * 100)}% CI]" if p["bootstrap"]["samples"]
                                 else "Mean (no CI: bootstrap_samples=0)")
              + " per category; n = questions the metric applies to.", ""]
    header = ["category", "name", "n"] + metrics
    body = []
    for k, v in cats.items():
        row = [k, v["name"], v["n"]]
        for m in metrics:
            c = results["metrics"][m]["by_category"].get(k, {})
            row.append(fmt_ci(c.get("mean"), c.get("ci95")))
        body.append(row)
    for key, label in OVERALL_ROWS:
        row = [f"**{label}**", "", results["metrics"][metrics[0]].get(f"{key}_n", "")]
        for m in metrics:
            b = results["metrics"][m]
            row.append(fmt_ci(b.get(key), b.get(f"{key}_ci95")))
        body.append(row)
    lines += _table(header, body) + [""]
    for group in sorted({g for b in results["metrics"].values() for g in b if g.startswith("by_")}
                        - {"by_category", "by_history", "by_seed"}):
        keys = list(results["metrics"][metrics[0]][group])
        lines += [f"### {group[3:].replace('_', ' ').title()}", ""]
        lines += _table([group[3:], "n"] + metrics, [
            [k, results["metrics"][metrics[0]][group][k]["n"]] +
            [fmt_ci(results["metrics"][m][group][k]["mean"], results["metrics"][m][group][k]["ci95"])
             for m in metrics] for k in keys]) + [""]
    if any("by_seed" in b for b in results["metrics"].values()):
        seeds = list(next(b["by_seed"] for b in results["metrics"].values() if "by_seed" in b))
        lines += ["### Per seed (overall)", ""]
        lines += _table(["seed"] + metrics, [[s] + [fmt(results["metrics"][m].get("by_seed", {}).get(s))
                                               for m in metrics] for s in seeds]) + [""]
    if "by_category" in plots:
        lines += [f"![per-category scores]({plots['by_category']})", ""]

    head = _headline_metric(results)
    hist = results["metrics"][head]["by_history"]
    lines += ["## Accuracy vs history length", "",
              f"{head} by the number of turns between the question's earliest evidence and the question.", ""]
    if hist:
        lines += _table(["turns", "n"] + metrics, [
            [f"{b['bin'][0]}-{b['bin'][1]}", b["n"]] +
            [fmt(next((x["mean"] for x in results["metrics"][m]["by_history"] if x["bin"] == b["bin"]), None))
             for m in metrics] for b in hist]) + [""]
        if "history" in plots:
            lines += [f"![accuracy vs history length]({plots['history']})", ""]
    else:
        lines += ["(no question with evidence turns)", ""]

    ops = results.get("ops")
    if ops:
        lines += ["## Memory operations", "",
                  f"Manager `{ops['manager']}` over {ops['conversations']} conversations, {ops['steps']} steps."
                  + ("" if ops["has_gold_ops"] else " The data has no gold operations: op accuracy is n/a."), ""]
        lines += _table(["metric", "value"], [
            ("op accuracy", fmt_ci(ops["op_accuracy"], ops["op_accuracy_ci95"])), ("op pairs", ops["op_pairs"]),
            ("invalid-id rate", fmt(ops["invalid_id_rate"])), ("invalid-op rate", fmt(ops["invalid_op_rate"])),
            ("format failure rate", fmt(ops["format_failure_rate"])),
            ("memory size (current entries)", fmt(ops["memory_size"], 1)),
            ("gold manager's memory size", fmt(ops["gold_memory_size"], 1)),
            ("versions written", fmt(ops["memory_versions"], 1))]) + [""]
        if ops["has_gold_ops"]:
            labels = ops["confusion"]["labels"]
            lines += ["Confusion (rows gold, columns predicted):", ""]
            lines += _table(["gold \\ pred"] + labels,
                            [[g] + row for g, row in zip(labels, ops["confusion"]["matrix"])]) + [""]

    eff = results["efficiency"]
    ff = results["format_failures"]
    lines += ["## Efficiency and format", ""]
    lines += _table(["measure", "value"], [
        ("tokens read per answer (whitespace tokens of the context given)", fmt(eff["tokens_read_per_answer"], 1)),
        ("latency per question (ms, mean / p50 / p95)", " / ".join(
            fmt(eff[k] * 1000, 3) if eff[k] is not None else "n/a"
            for k in ("latency_s_per_question", "latency_s_p50", "latency_s_p95"))),
        ("bank building per conversation (s)", fmt(eff["bank_build_s_per_conversation"], 3)),
        ("wall time (s)", fmt(eff.get("wall_s"), 1)),
        ("conversations from cache", eff.get("conversations_from_cache", 0)),
        ("unparsable answers", f"{ff['answers_unparsed']} of {ff['answers']}"),
        ("selected ids not among the candidates", ff["unknown_selected_ids"]),
    ]) + [""]
    if results.get("judge"):
        j = results["judge"]
        lines += ["## Judge", "", (f"{j['judged']} answers judged, {j['format_failures']} verdicts unparsable "
                  f"(excluded from J), {j['unparsed_answers_scored_0']} unparsable answers scored 0."), ""]
    path = out / "report.md"
    with atomic_write(path) as f:
        f.write("\n".join(lines))
    return path


def write_plots(out: Path, results: dict[str, Any]) -> dict[str, str]:
    """plot_by_category.png (bars with CIs) and plot_history.png; returns {kind: file name}."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    made: dict[str, str] = {}
    metrics = [m for m in results["metrics"] if m in ANSWER_METRICS or m == "judge"] or list(results["metrics"])
    metrics = metrics[:4]
    cats = list(results["counts"]["by_category"])
    if cats and metrics:
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(cats) * max(1, len(metrics)) / 2), 4))
        width = 0.8 / len(metrics)
        for i, m in enumerate(metrics):
            xs, ys, lo, hi = [], [], [], []
            for j, k in enumerate(cats):
                c = results["metrics"][m]["by_category"][k]
                if c["mean"] is None:
                    continue
                xs.append(j + (i - (len(metrics) - 1) / 2) * width)
                ys.append(c["mean"])
                ci = c["ci95"] or [c["mean"], c["mean"]]
                lo.append(c["mean"] - ci[0])
                hi.append(ci[1] - c["mean"])
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=m)
        names = results["counts"]["by_category"]
        ax.set_xticks(range(len(cats)))
        ax.set_xticklabels([f"{k}\n{names[k]['name']}"[:28] if names[k]["name"] != k else k for k in cats],
                           fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("score (0-1)")
        ax.set_title(f"{results['protocol']['answerer']['name']} on {results['protocol']['name']}")
        ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
        fig.tight_layout()
        fig.savefig(out / "plot_by_category.png", dpi=100)
        plt.close(fig)
        made["by_category"] = "plot_by_category.png"
    head = _headline_metric(results)
    if results["metrics"][head]["by_history"]:
        fig, ax = plt.subplots(figsize=(6, 4))
        for m in metrics:
            bins = results["metrics"][m]["by_history"]
            pts = [((b["bin"][0] + b["bin"][1]) / 2, b["mean"]) for b in bins if b["mean"] is not None]
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=m)
        ax.set_xlabel("turns between the earliest evidence and the question")
        ax.set_ylabel("score (0-1)")
        ax.set_ylim(0, 1.05)
        ax.set_title("accuracy vs history length")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "plot_history.png", dpi=100)
        plt.close(fig)
        made["history"] = "plot_history.png"
    return made


def summary_table(results: dict[str, Any], metrics: Sequence[str] | None = None) -> str:
    """A plain-text table: one row per category and the overall rows, one column per metric."""
    metrics = list(metrics or results["metrics"])[:6]
    rows = [["category", "name", "n"] + metrics]
    for k, v in results["counts"]["by_category"].items():
        rows.append([k, v["name"][:22], str(v["n"])] +
                    [fmt(results["metrics"][m]["by_category"][k]["mean"]) for m in metrics])
    for key, label in OVERALL_ROWS:
        rows.append([label, "", str(results["metrics"][metrics[0]].get(f"{key}_n", ""))] +
                    [fmt(results["metrics"][m].get(key)) for m in metrics])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def format_protocol(p: dict[str, Any]) -> str:
    """The protocol lines `memrl eval` prints before its table."""
    ans, man = p["answerer"], p["manager"]
    return "\n".join([
        (f"protocol   {p['name']} (benchmark {p['benchmark']}, split {p['split']}, "
        f"{p['num_conversations']} conversations, {p['num_questions']} questions)"),
        f"answerer   {ans['spec'] or ans['name']} [{ans['kind']}] mode={ans['mode']} trained={ans['trained']}",
        f"manager    {man['spec'] or man['name']} [{man['kind']}]",
        f"bank       {p['memory_bank']}",
        "retrieval  " + ", ".join(f"{k}={v}" for k, v in p["candidates"].items() if v is not None),
        f"overall    {p['overall']}; categories keyed by {p['category_key']}: "
        + ", ".join(f"{k}={v}" for k, v in p["category_mapping"].items()),
        f"judge      {p['judge']['spec'] + ' ' + p['judge']['prompt_version'] if p['judge'] else 'none'}",
        (f"seeds      {p['seeds_run']} (temperature {p['temperature']}); "
         + (f"CI {p['bootstrap']['level']} bootstrap x{p['bootstrap']['samples']}" if p["bootstrap"]["samples"]
            else "no CI (bootstrap_samples=0)")),
    ] + [f"note       {n}" for n in p.get("notes") or []])


# ---- reading runs and comparing them -------------------------------------------------------------------------
def load_results(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(run directory, results dict) from a run directory or a results.json; DataError names the file."""
    p = Path(path)
    f = p / "results.json" if p.is_dir() else p
    if not f.is_file():
        raise DataError(f"{f}: no such file (expected an evaluation run directory with results.json)")
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{f}: invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{f}: not UTF-8 text ({e.reason})") from None
    if not isinstance(data, dict):
        raise DataError(f"{f}: expected a JSON object, got {type(data).__name__}")
    for key in ("protocol", "metrics"):
        if not isinstance(data.get(key), dict):
            raise DataError(f"{f}: not a memrl results file: key '{key}' missing or not an object")
    for m, block in data["metrics"].items():
        if not isinstance(block, dict) or "overall" not in block or not isinstance(block.get("by_category"), dict):
            raise DataError(f"{f}: metrics.{m}: expected an object with 'overall' and 'by_category'")
        for k, c in block["by_category"].items():
            if not isinstance(c, dict) or not {"name", "n", "mean"} <= set(c):
                raise DataError(f"{f}: metrics.{m}.by_category.{k}: expected an object with name, n, mean, ci95")
    return f.parent, data


def load_predictions(run_dir: Path) -> list[dict[str, Any]] | None:
    f = run_dir / "predictions.jsonl"
    if not f.is_file():
        return None
    out = []
    for lineno, rec in iter_jsonl(f):
        if not isinstance(rec.get("uid"), str) or not isinstance(rec.get("scores"), dict):
            raise DataError(f"{f}:{lineno}: expected a prediction record with 'uid' and 'scores'")
        out.append(rec)
    return out


def _member(rec: dict[str, Any], names: set[str]) -> bool:
    return str(rec.get("category")) in names or (rec.get("category_id") is not None
                                                 and str(rec["category_id"]) in names) \
        or ("abstention" in names and bool(rec.get("abstention")))


def compare(paths: Sequence[str | Path], metric: str | None = None, out: str | Path | None = None,
            samples: int = 1000, level: float = 0.95) -> tuple[str, dict[str, Any]]:
    """Side-by-side table of runs; differences to the first run with paired bootstrap CIs.

    Returns (markdown, data). With `out`, writes the markdown (or JSON when `out` ends in .json).
    """
    if len(paths) < 2:
        raise DataError("compare needs at least two runs")
    runs = []
    for p in paths:
        run_dir, res = load_results(p)
        runs.append({"path": str(p), "dir": run_dir, "results": res, "records": load_predictions(run_dir),
                     "label": Path(p).name if Path(p).is_dir() else run_dir.name})
    common = [m for m in runs[0]["results"]["metrics"] if all(m in r["results"]["metrics"] for r in runs[1:])]
    if metric is not None:
        if metric not in common:
            raise DataError(f"metric {metric!r} is not in every run (common: {common})")
        common = [metric]
    if not common:
        raise DataError("the runs share no metric")
    base = runs[0]
    proto = base["results"]["protocol"]
    for r in runs[1:]:
        check_same_questions(base, r)
    notes = []
    for r in runs[1:]:
        diff = [k for k in COMPARABLE_FIELDS if r["results"]["protocol"].get(k) != proto.get(k)]
        if diff:
            notes.append(f"{r['label']} differs from {base['label']} in {', '.join(diff)}: differences may not "
                         "be comparable")
        if r["records"] is None or base["records"] is None:
            notes.append(f"{r['label'] if r['records'] is None else base['label']}: no predictions.jsonl, so no "
                         "paired confidence intervals")
    excluded = {str(x) for x in proto.get("exclude_from_overall", [])}
    adversarial = {str(x) for x in proto.get("adversarial_categories", [])}
    data: dict[str, Any] = {"runs": [r["path"] for r in runs], "notes": notes, "metrics": {}}
    cis = (f"with {int(level * 100)}% bootstrap CIs ({samples} resamples)" if samples else
           "without confidence intervals (--samples 0)")
    lines = ["# Comparison", "", "Runs: " + ", ".join(f"`{r['path']}`" for r in runs) +
             f". Differences are to `{base['label']}`, paired over the same questions, {cis}.", ""]
    lines += [f"> {n}" for n in notes] + ([""] if notes else [])
    cat_key = proto.get("category_key", "category_id")
    for m in common:
        groups = [(k, label) for k, label in OVERALL_ROWS]
        cats = list(base["results"]["metrics"][m]["by_category"])
        for r in runs[1:]:
            cats += [k for k in r["results"]["metrics"][m]["by_category"] if k not in cats]
        groups += [(f"cat:{k}", k) for k in cats]
        per_run = [question_scores(r["records"], m) if r["records"] is not None else None for r in runs]
        recs = {rec["uid"]: rec for rec in base["records"] or []}

        def members(group: str, recs: dict[str, dict[str, Any]] = recs) -> set[str] | None:
            if base["records"] is None:
                return None
            if group == "overall":
                return {u for u, rec in recs.items() if not _member(rec, excluded)}
            if group == "overall_excl_adversarial":
                return {u for u, rec in recs.items() if not _member(rec, adversarial)}
            if group == "overall_all":
                return set(recs)
            key = group[4:]
            return {u for u, rec in recs.items()
                    if str(rec.get(cat_key) if rec.get(cat_key) is not None else rec.get("category")) == key}

        header = ["", "n"] + [runs[0]["label"]]
        for r in runs[1:]:
            header += [r["label"], f"{r['label']} - {base['label']}"]
        body, mdata = [], {}
        for group, label in groups:
            vals = []
            for r in runs:
                b = r["results"]["metrics"][m]
                vals.append(b.get(group) if not group.startswith("cat:") else
                            b["by_category"].get(group[4:], {}).get("mean"))
            n = (base["results"]["metrics"][m].get(f"{group}_n") if not group.startswith("cat:") else
                 base["results"]["metrics"][m]["by_category"].get(group[4:], {}).get("n"))
            name = base["results"]["metrics"][m]["by_category"].get(group[4:], {}).get("name") \
                if group.startswith("cat:") else None
            row = [f"{label} ({name})" if name and name != label else label, fmt(n), fmt(vals[0])]
            entry = {"values": vals, "diffs": []}
            ids = members(group)
            for i, r in enumerate(runs[1:], start=1):
                d: dict[str, Any]
                if ids is not None and per_run[0] is not None and per_run[i] is not None:
                    a = {u: v for u, v in per_run[0].items() if u in ids}
                    b = {u: v for u, v in per_run[i].items() if u in ids}
                    d = paired_difference(a, b, samples, level, seed=hash_seed(m, group, i))
                else:
                    d = {"n": None, "diff": (vals[i] - vals[0]) if None not in (vals[i], vals[0]) else None,
                         "ci95": None}
                entry["diffs"].append(d)
                sign = "+" if (d["diff"] or 0) >= 0 else ""
                row += [fmt(vals[i]), f"{sign}{fmt_ci(d['diff'], d['ci95'])}" if d["diff"] is not None else "n/a"]
            mdata[label if not group.startswith("cat:") else group] = entry
            body.append(row)
        data["metrics"][m] = mdata
        lines += [f"## {m}", ""] + _table(header, body) + [""]
    # Collapse check: does a run say one thing to every question? (the outcome protocol: no single output above 80%)
    if all(r["records"] is not None for r in runs):
        data["outputs"] = {r["label"]: output_stats(r["records"]) for r in runs}
        body = [[label, fmt(st["n"]), fmt(st["top_share"]), str(st["top"])[:40], fmt(st["distinct"]),
                 fmt(st["mean_words"]), fmt(st["no_answer"])] for label, st in data["outputs"].items()]
        lines += ["## outputs", "", "Share of the most common answer (collapse above 0.8), its text, distinct answers, "
                  "mean answer length in words, share with no answer (format failures).", ""]
        lines += _table(["run", "n", "top share", "top answer", "distinct", "mean words", "no answer"], body) + [""]
    md = "\n".join(lines)
    if out is not None:
        with atomic_write(out) as f:
            if str(out).endswith(".json"):
                json.dump(data, f, indent=2)
                f.write("\n")
            else:
                f.write(md)
    return md, data


def _question_set(records: Sequence[dict[str, Any]]) -> set[str]:
    return {r["uid"] for r in records}


def check_same_questions(base: dict[str, Any], run: dict[str, Any]) -> None:
    """Refuse to compare runs over different questions, data or question protocol (a DataError naming both)."""
    a, b = base["results"]["protocol"], run["results"]["protocol"]
    if base["records"] is not None and run["records"] is not None:
        qa, qb = _question_set(base["records"]), _question_set(run["records"])
        if qa != qb:
            only_a, only_b = sorted(qa - qb), sorted(qb - qa)
            first = (f"{len(only_a)} of {base['label']}'s are not in {run['label']} (first {only_a[0]!r})" if only_a
                     else f"{len(only_b)} of {run['label']}'s are not in {base['label']} (first {only_b[0]!r})")
            raise DataError(f"compare: {run['path']} answered {len(qb)} questions and {base['path']} {len(qa)}: {first}; "
                            "runs are compared on the same questions: evaluate both with the same data, split, "
                            "max_questions and skip_categories")
    diff = [k for k in SAME_QUESTIONS_FIELDS if a.get(k) != b.get(k)]
    if diff:
        shown = "; ".join(f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in diff[:3])
        raise DataError(f"compare: {run['path']} and {base['path']} were evaluated on different questions or "
                        f"protocols ({shown}); evaluate both with the same data, split, max_questions, "
                        "skip_categories and category settings")


def output_stats(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What a run answered, over its prediction records: the most common (normalized) answer and its share,
    distinct answers, mean length in words and the share of questions with no answer."""
    answers = [" ".join(str(r.get("prediction")).lower().split()) if r.get("prediction") not in (None, "") else None
               for r in records]
    given = [a for a in answers if a is not None]
    counts = Counter(given)
    top, top_n = counts.most_common(1)[0] if counts else (None, 0)
    return {"n": len(records), "top": top, "top_share": top_n / len(records) if records else None,
            "distinct": len(counts), "mean_words": sum(len(a.split()) for a in given) / len(given) if given else None,
            "no_answer": (len(answers) - len(given)) / len(answers) if answers else None}


def hash_seed(*parts: Any) -> int:
    import zlib

    return zlib.crc32("\x1f".join(map(str, parts)).encode())
