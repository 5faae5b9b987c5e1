"""Planner throughput: decode + translate + plan of one large SQS batch, against `json.loads` of it."""

from __future__ import annotations

import gc
import json
import time
from typing import Any

from bench.scenarios import SCENARIOS, config_text, make_storm


def planner_throughput(records: int = 10_000, repeats: int = 9) -> dict[str, Any]:
    """decode + translate + plan of one `records`-record SQS batch vs json.loads of it, in this process.

    Timed in this thread's CPU time (`time.thread_time`): parsing and the three stages are pure computation
    on one thread, and on a virtual machine the wall clock also counts the time the hypervisor gives to
    other guests (steal), which swung json.loads of the same batch between 58 and 114 ms here. Each repeat
    times the parses and the stages back to back and yields one ratio; the figures are the median repeat's.
    """
    clock = time.thread_time
    from cdnpurge.core.config import parse_config
    from cdnpurge.core.events import decode_event
    from cdnpurge.core.plan import plan
    from cdnpurge.core.registry import specs
    from cdnpurge.core.translate import translate

    endpoints = {"fastly": "https://api.fastly.com", "cloudfront": "https://cf", "medianova": "https://mn"}
    results: dict[str, Any] = {"records": records}
    for name in ("fastly-keys", "cloudfront-paths", "medianova-paths", "fastly-urls"):
        scenario = SCENARIOS[name]
        config = parse_config(config_text(scenario, endpoints))
        provider_specs = specs(config.providers)
        text = json.dumps({"Records": make_storm(scenario, records, "tp").records})
        timings: list[tuple[float, float, float, float, float]] = []  # parse, bodies, decode, translate, plan
        for _ in range(repeats):
            # Every timing stops before its result is freed and starts after the previous one's is: freeing
            # tens of thousands of objects is no part of parsing or planning, so no figure includes it.
            decoded = translation = planned = None
            gc.collect()
            started = clock()
            parsed = json.loads(text)
            parse_seconds = clock() - started
            del parsed
            event = json.loads(text)
            bodies = [record["body"] for record in event["Records"]]
            gc.collect()
            started = clock()
            parsed_bodies = [json.loads(body) for body in bodies]
            bodies_seconds = clock() - started
            del parsed_bodies
            gc.collect()
            started = clock()
            decoded = decode_event(event)
            decoded_at = clock()
            translation = translate(decoded.changes, config)
            translated_at = clock()
            planned = plan(translation.routed, provider_specs)
            planned_at = clock()
            timings.append(
                (
                    parse_seconds,
                    bodies_seconds,
                    decoded_at - started,
                    translated_at - decoded_at,
                    planned_at - translated_at,
                )
            )
        assert decoded is not None and planned is not None
        assert len(decoded.changes) == records and not planned.errors
        ratios = sorted((sum(timing[2:]) / timing[0], timing) for timing in timings)
        ratio, (parse_seconds, bodies_seconds, decode, translate_, plan_) = ratios[len(ratios) // 2]
        results[name] = {
            "bytes": len(text),
            "repeats": repeats,
            "ratios": [round(r, 2) for r, _ in ratios],
            "json_loads_seconds": round(parse_seconds, 4),
            "decode_seconds": round(decode, 4),
            "translate_seconds": round(translate_, 4),
            "plan_seconds": round(plan_, 4),
            "ratio": round(ratio, 2),
            # Each SQS body is JSON too: parsing the whole batch is the envelope plus every body.
            "bodies_loads_seconds": round(bodies_seconds, 4),
            "ratio_to_full_parse": round((decode + translate_ + plan_) / (parse_seconds + bodies_seconds), 2),
            "requests": len(planned.requests),
        }
    return results


def throughput_lines(throughput: dict[str, Any]) -> list[str]:
    lines = []
    for name, figures in throughput.items():
        if isinstance(figures, dict):
            loads = figures["json_loads_seconds"]
            decode, translate, plan_ = (
                figures[f"{stage}_seconds"] / loads for stage in ("decode", "translate", "plan")
            )
            lines.append(
                f"  {name:<17} json.loads {loads * 1000:6.1f} ms | decode {decode:4.2f}x + translate "
                f"{translate:4.2f}x + plan {plan_:4.2f}x = {figures['ratio']:.2f}x | vs envelope + bodies "
                f"({(loads + figures['bodies_loads_seconds']) * 1000:.1f} ms): {figures['ratio_to_full_parse']:.2f}x"
                f" | median of {figures['repeats']}: {' '.join(f'{r:.2f}' for r in figures['ratios'])}"
            )
    return lines
