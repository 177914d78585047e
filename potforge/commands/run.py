"""``potforge run``: a whole campaign, from property targets to a validated potential.

Runs the campaign file's stages — generate a diverse pool (entropy), select by information
matching, fit (or design) the model, POPS uncertainty with a calibrated inflation, MD active
learning, the final property table with bounds — on a Dask cluster, with the campaign database
as the single source of truth.  Without CAMPAIGN it runs the built-in default (tungsten, the
shipped DFT-trained W SNAP as the reference, seven property targets; `potforge run --show-default`
prints it).  A killed run resumes where it stopped when started again with the same --out;
--from STAGE reruns from a stage.  Writes into --out: model/ (ASE-loadable, and lammps/),
campaign.db, properties.json, campaign.resolved.toml, timeline.json, provenance.json, log.txt,
stages/ and report.html.  Exit code 0 when every target is met, 1 when one is missed or a stage
failed (the table says which and why), 2 on bad input.
"""

from __future__ import annotations

import argparse

STAGE_NAMES = ("generate", "select", "fit", "uq", "active", "properties")
"""potforge.campaign.config.STAGES, written out so that ``--help`` imports nothing heavy (a
test keeps the two equal)."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``run`` verb to ``sub``."""
    from potforge.commands._common import add_quiet

    p = sub.add_parser(
        "run",
        help="run a campaign: property targets → a validated potential with a report",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    p.add_argument(
        "campaign", nargs="?", metavar="CAMPAIGN", help="campaign.toml (default: built-in)"
    )
    p.add_argument("--out", metavar="DIR", help="output folder (default campaign-<elements>)")
    p.add_argument("--from", dest="start", choices=STAGE_NAMES, help="rerun from this stage")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786")
    p.add_argument(
        "--force", action="store_true", help="start over in a folder that holds an earlier campaign"
    )
    p.add_argument("--show-default", action="store_true", help="print the default campaign file")
    add_quiet(p, log=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``potforge run``."""
    from potforge.campaign.config import DEFAULT_CAMPAIGN, default_campaign, load_campaign
    from potforge.campaign.runner import run_campaign

    if args.show_default:
        print(DEFAULT_CAMPAIGN, end="")
        return 0
    campaign = load_campaign(args.campaign) if args.campaign else default_campaign()
    out = args.out or f"campaign-{'-'.join(campaign.elements)}"
    say = (lambda *a, **k: None) if args.quiet else (lambda line: print(line, flush=True))
    result = run_campaign(
        campaign,
        out,
        start=args.start,
        scheduler=args.scheduler,
        force=args.force,
        say=say,
        progress=False if args.quiet else None,
        argv=["potforge", *args.argv],
    )
    print(table(result.properties))
    print(f"oracle calls: {result.oracle_calls} of {campaign.budget.oracle_calls}")
    for stage in result.failed:
        entry = next(t for t in result.timeline if t["stage"] == stage)
        print(f"stage {stage} failed: {entry['message']}")
    missed = result.missed()
    for name, reasons in missed.items():
        print(f"target {name} missed: {'; '.join(reasons)}")
    print(f"report: {result.report}")
    return 1 if missed or result.failed else 0


def table(props: dict) -> str:
    """The property table: value, calibrated bounds, σ, reference, tolerance and verdicts."""
    if not props.get("qois"):
        return "no property table (the properties stage did not run)"
    head = (
        f"{'QoI':<15}{'value':>11} {'unit':<7}{'lower':>11}{'upper':>11}{'σ':>10}"
        f"{'reference':>11}{'tolerance':>11}  precision  inside  accurate"
    )
    lines = [head]

    def num(x) -> str:
        return f"{x:11.4g}" if isinstance(x, int | float) else f"{'—':>11}"

    def flag(x) -> str:
        return {True: "yes", False: "NO", None: "—"}[x]

    for name, q in props["qois"].items():
        sigma = f"{q['sigma']:10.3g}" if q.get("sigma") is not None else f"{'—':>10}"
        lines.append(
            f"{name:<15}{num(q.get('value'))} {q.get('unit') or '':<7}{num(q.get('lower'))}"
            f"{num(q.get('upper'))}{sigma}{num(q.get('reference'))}{num(q.get('tolerance'))}"
            f"  {flag(q.get('precision_met')):<9}  {flag(q.get('reference_inside')):<6}  "
            f"{flag(q.get('accurate'))}"
        )
    return "\n".join(lines)
