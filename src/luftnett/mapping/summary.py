"""The plain-language "where to act" summary of a ranked map, in Norwegian bokmål and English.

It says which areas and receptors are above which reference value and how sure the map is
(the probability from each one's interval; the LOOCV error; whether the stated uncertainty
held up in cross-validation), and that microsensor data are indicative: a basis for
where to look and act, not a finding that a limit value is legally exceeded.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["summary_markdown"]

_PERIOD_NO = {"hourly": "timemiddel", "daily": "døgnmiddel", "annual": "årsmiddel"}
_PERIOD_EN = {"hourly": "hourly mean", "daily": "daily mean", "annual": "annual mean"}
_WORD_NO = {
    "above": "over",
    "probably above": "trolig over",
    "possibly above": "kanskje over",
    "below": "under",
    "unknown": "ukjent",
}
_METHOD = {"idw": "IDW", "ok": "ordinary kriging", "uk": "universal kriging"}
_METHOD_NO = {
    "idw": "inverse avstandsvekting (IDW)",
    "ok": "ordinær kriging",
    "uk": "universell kriging",
}


def _f(v: Any, digits: int = 1, lang: str = "en") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    text = f"{v:.{digits}f}"
    return text.replace(".", ",") if lang == "no" else text


#: the ``kind`` of an area or receptor (mapping/features.py) in bokmål; another kind is shown
#: as given
KINDS_NO = {
    "district": "bydel",
    "school": "skole",
    "school-catchment": "skolekrets",
    "kindergarten": "barnehage",
    "nursing-home": "sykehjem",
    "hospital": "sykehus",
    "area": "område",
    "receptor": "sted",
}


def kind_text(kind: str, lang: str) -> str:
    """``kind`` for a reader: in bokmål where known, else with its hyphens as spaces."""
    if lang == "no" and kind in KINDS_NO:
        return KINDS_NO[kind]
    return kind.replace("-", " ")


def _item(r: dict[str, Any], unit: str, lang: str) -> str:
    lo, hi = r["ci95"]
    word = "95 % intervall" if lang == "no" else "95 % interval"
    v, lo_, hi_ = (_f(x, 1, lang) for x in (r["value"], lo, hi))
    return f"**{r['name']}** ({kind_text(r['kind'], lang)}): {v} {unit} ({word} {lo_}–{hi_})"


def _pct(p: float | None) -> str:
    return "–" if p is None else f"{100 * p:.0f} %"


def _act(ranking: dict[str, Any], meta: dict[str, Any], lang: str) -> list[str]:
    unit = meta["unit"]
    lines: list[str] = []
    guidelines = meta["guidelines"]
    if not guidelines:
        lines.append(
            "- Ingen grenseverdi eller luftkvalitetskriterium gjelder for denne perioden; "
            "listen under viser bare rekkefølgen."
            if lang == "no"
            else "- No limit value or air-quality criterion applies to this period; the lists "
            "below only rank."
        )
    for gi, g in enumerate(guidelines):
        name = g["name_no"] if lang == "no" else g["name_en"]
        value = f"{g['value']:.4g}"
        head = f"{name} {value.replace('.', ',') if lang == 'no' else value} {unit}"
        hits = []
        for group in ("areas", "receptors"):
            for r in ranking.get(group, []):
                v = r["guidelines"][gi]
                if v["verdict"] in ("above", "probably above", "possibly above"):
                    word = _WORD_NO[v["verdict"]] if lang == "no" else v["verdict"]
                    hits.append(
                        (v["p_above"] or 0.0, f"{r['name']} ({word}, P = {_pct(v['p_above'])})")
                    )
        hits.sort(key=lambda h: -h[0])
        if hits:
            shown = ", ".join(h for _, h in hits[:12])
            more = len(hits) - 12
            if more > 0:
                shown += f" og {more} til" if lang == "no" else f" and {more} more"
            lines.append(f"- **{head}**: {shown}.")
        else:
            lines.append(
                f"- **{head}**: ingen område eller mottaker er trolig over (alle P < 5 %)."
                if lang == "no"
                else f"- **{head}**: no area or receptor is likely above it (all P < 5 %)."
            )
    return lines


def _confidence(meta: dict[str, Any], lang: str) -> list[str]:
    cv = meta["loocv"]
    unit = meta["unit"]
    method = meta["method"]
    rmsse = cv.get("rmsse")
    out = []
    if lang == "no":
        out.append(
            f"- Kartet bygger på {meta['sites_used']} målesteder ({_METHOD_NO[method]}). "
            f"Kryssvalidering (utelat ett sted om gangen): typisk feil (RMSE) "
            f"{_f(cv['rmse'], 2, 'no')} {unit}, skjevhet {_f(cv['bias'], 2, 'no')} {unit}."
        )
        if rmsse is not None and rmsse > 1.5:
            out.append(
                f"- Usikkerheten er trolig undervurdert (RMSSE {_f(rmsse, 2, 'no')} > 1): les "
                "intervallene som for smale."
            )
        elif rmsse is not None:
            out.append(
                f"- Usikkerheten holdt i kryssvalideringen (RMSSE {_f(rmsse, 2, 'no')}; "
                "nær 1 er bra)."
            )
        out.append(
            "- Målingene er indikative (mikrosensorer) og viser hvor det bør følges opp; de kan "
            "ikke brukes til å fastslå brudd på grenseverdier."
        )
        return out
    out.append(
        f"- The map uses {meta['sites_used']} sites ({_METHOD[method]}). Leave-one-out cross-"
        f"validation: typical error (RMSE) {_f(cv['rmse'], 2)} {unit}, bias "
        f"{_f(cv['bias'], 2)} {unit}."
    )
    if rmsse is not None and rmsse > 1.5:
        out.append(
            f"- The stated uncertainty is probably too small (RMSSE {rmsse:.2f} > 1): read the "
            "intervals as too narrow."
        )
    elif rmsse is not None:
        out.append(
            f"- The stated uncertainty held up in cross-validation (RMSSE {rmsse:.2f}; "
            "near 1 is good)."
        )
    out.append(
        "- The data are indicative (microsensors): they show where to follow up, not that a "
        "limit value is legally exceeded."
    )
    return out


def summary_markdown(ranking: dict[str, Any], meta: dict[str, Any]) -> str:
    """Markdown: a Norwegian section, then an English one."""
    p = meta["period"]
    pol = {"pm25": "PM2.5", "pm10": "PM10", "no2": "NO2"}[meta["pollutant"]]
    unit = meta["unit"]
    counts = meta["statistic"] == "exceedances"
    thr = meta.get("threshold") or {}
    conc_unit = "ppb" if pol == "NO2" else "µg/m³"
    limit = f"{thr.get('value', 0):.4g} {conc_unit}"
    what_no = f"antall døgn over {limit}" if counts else _PERIOD_NO[p["kind"]]
    what_en = f"days above {limit}" if counts else _PERIOD_EN[p["kind"]]
    out = [f"# {pol}, {what_en}, {p['label']}", ""]
    for lang in ("no", "en"):
        out.append("## Norsk (bokmål)" if lang == "no" else "## English")
        out.append("")
        out.append(f"*{pol}, {what_no if lang == 'no' else what_en}, {p['label']}*")
        out.append("")
        out.append("### Hvor bør vi sette inn tiltak?" if lang == "no" else "### Where to act")
        out.extend(_act(ranking, meta, lang))
        out.append("")
        for group, no, en in (
            ("areas", "Mest utsatte områder", "Most exposed areas"),
            (
                "receptors",
                "Mest utsatte steder (skoler, barnehager, sykehjem)",
                "Most exposed receptors (schools, kindergartens, nursing homes)",
            ),
        ):
            items = ranking.get(group, [])
            if not items:
                continue
            out.append(f"### {no if lang == 'no' else en}")
            out.extend(f"{r['rank']}. {_item(r, unit, lang)}" for r in items[:5])
            out.append("")
        out.append("### Hvor sikre er vi?" if lang == "no" else "### How sure are we?")
        out.extend(_confidence(meta, lang))
        out.append("")
    return "\n".join(out)
