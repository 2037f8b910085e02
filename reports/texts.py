"""Words of the report, Vietnamese first (with diacritics), English second."""

from __future__ import annotations

from villagewatch.contract import METRICS
from villagewatch.sites import STATION_KINDS
from villagewatch.textfmt import number, percent, quantity

TEXTS: dict[str, tuple[str, str]] = {
    "title": ("Báo cáo quan trắc môi trường tháng {month}", "Environmental monitoring report, {month}"),
    "commune": ("Xã", "Commune"),
    "province": ("Tỉnh", "Province"),
    "generated": ("Lập lúc {at} (giờ địa phương) bởi villagewatch", "Generated {at} (local time) by villagewatch"),
    "summary": ("Tóm tắt", "Summary"),
    "verdicts": ("Kết luận theo lĩnh vực", "Verdict per domain"),
    "ok": ("đạt", "met"),
    "fail": ("không đạt", "not met"),
    "nodata": ("không đủ số liệu", "not enough data"),
    "na": ("không áp dụng", "not applicable"),
    "empty_title": ("KHÔNG CÓ SỐ LIỆU NÀO TRONG THÁNG {month}", "NO READINGS AT ALL IN {month}"),
    "empty_text": ("Không trạm nào gửi số liệu về trong tháng này, nên không thể kết luận đạt hay không đạt "
                   "cho bất kỳ chỉ tiêu nào.",
                   "No station sent any reading this month, so no limit can be judged met or not met."),
    "insufficient_first": ("Không đủ số liệu để kết luận: {items}.", "Not enough data to judge: {items}."),
    "domain_ok": ("{domain}: đạt — {n} chỉ tiêu tại {s} trạm đều đạt.",
                  "{domain}: met — all {n} limits at {s} station(s) met."),
    "domain_nodata": ("{domain}: không đủ số liệu — {what}.", "{domain}: not enough data — {what}."),
    "domain_fail": ("{domain}: không đạt — {what}.", "{domain}: not met — {what}."),
    "fail_item": ("{param} {verb} tại {station}: {days} ngày, xấu nhất {peak}",
                  "{param} {verb} at {station}: {days} day(s), worst {peak}"),
    "nodata_item": ("{param} tại {station} ({ok}/{total} ngày có đủ số liệu)",
                    "{param} at {station} ({ok}/{total} days with enough data)"),
    "below_min": ("thấp hơn mức tối thiểu {limit}", "below the minimum {limit}"),
    "above_max": ("vượt mức tối đa {limit}", "above the maximum {limit}"),
    "outside_band": ("ngoài khoảng cho phép {limit}", "outside the allowed range {limit}"),
    "flood_above": ("trên {level} {by}", "{by} above {level}"),
    "flood_below": ("dưới {level} {by}", "{by} below {level}"),
    "flood_at": ("đúng {level}", "at {level}"),
    "flood_line": ("Lũ tại {station}: đỉnh {peak} ngày {day}, {rel}; số ngày đạt báo động I/II/III: {days}.",
                   "Flood at {station}: peak {peak} on {day}, {rel}; days at alarm level I/II/III: {days}."),
    "flood_nodata": ("Lũ tại {station}: không đủ số liệu mực nước.", "Flood at {station}: not enough level data."),
    "waste_line": ("Rác tại {station}: thùng trên {thr} tổng {hours}, {n} lần, lâu nhất {longest}.",
                   "Waste at {station}: bin above {thr} for {hours} in total, {n} time(s), longest {longest}."),
    "waste_ok": ("Rác: không thùng nào vượt {thr}.", "Waste: no bin above {thr}."),
    "aqi_line": ("Không khí (VN_AQI ngày) tại {station}: {bands}.", "Air (daily VN_AQI) at {station}: {bands}."),
    "actions": ("Ba việc cần làm", "Three things to do"),
    "no_action": ("Không có việc cần làm gấp.", "Nothing urgent to do."),
    "data_line": ("Số liệu: đã nhận {pct} số đo dự kiến từ {n} trạm; {excl} số đo bị loại do lỗi cảm biến.",
                  "Data: {pct} of expected readings received from {n} stations; {excl} readings excluded as "
                  "sensor faults."),
    "data_low": ("Trạm thiếu số liệu (dưới 90 %): {names}.", "Stations missing data (below 90 %): {names}."),
    "unverified_used": ("Có dùng giới hạn chưa đối chiếu văn bản gốc (đánh dấu *): {items}.",
                        "Uses limits not yet checked against the official text (marked *): {items}."),
    "in_force": ("Quy chuẩn áp dụng trong tháng", "Regulations applied this month"),
    "valid_span": ("hiệu lực {frm}{until}", "in force {frm}{until}"),
    "valid_from": ("từ {d}", "from {d}"),
    "valid_until": (" đến hết {d}", " until {d}"),
    "replaced": ("; được thay bằng {by}", "; replaced by {by}"),
    "appendix": ("Phụ lục kỹ thuật: cách tính và dữ liệu quy tắc", "Technical appendix: method and rule data"),
    "evidence": ("Quy tắc bằng chứng", "Evidence rules"),
    "evidence_text": (
        "Mỗi ngày, mỗi trạm, mỗi chỉ tiêu có ba kết luận: đạt, không đạt, không đủ số liệu. Không đạt: "
        "vượt giới hạn kéo dài đủ thời gian của quy tắc (như điều kiện phát cảnh báo), hoặc trung bình của "
        "một khoảng đủ số liệu vượt giới hạn. Đạt: không vượt và có số đo trong ít nhất {hours}/24 giờ "
        "(giới hạn trung bình: ít nhất {win} % số khoảng hợp lệ). Tháng đạt khi không ngày nào không đạt và "
        "ít nhất {month} % số ngày áp dụng là đạt (quy tắc của dự án). Số đo có cờ spike, flatline, suspect, "
        "calibration_expired là lỗi cảm biến: bị loại khỏi đánh giá, giá trị đỉnh và các đợt vượt, và được đếm riêng.",
        "Each day, station and limit gets one of three outcomes: met, not met, not enough data. Not met: a "
        "breach held for the rule's duration (the condition that fires an alert), or a valid averaging window "
        "whose mean breaks the limit. Met: no breach, and readings in at least {hours} of 24 hours (averaging "
        "limits: at least {win} % of windows valid). The month is met when no day is not met and at least "
        "{month} % of its days in force are met (project rule). Readings flagged spike, flatline, suspect or "
        "calibration_expired are sensor faults: excluded from compliance, peaks and episodes, and counted."),
    "versions": ("Quy chuẩn và bộ quy tắc đã dùng", "Regulations and rule packs used"),
    "unverified": ("Giới hạn đánh dấu * chưa được đối chiếu văn bản gốc.", "Limits marked * are not yet checked against the official text."),
    "excluded": ("Số đo bị loại do lỗi cảm biến", "Readings excluded as sensor faults"),
    "days_ok": ("Ngày đạt", "Days met"),
    "days_fail": ("Ngày không đạt", "Days not met"),
    "days_nodata": ("Ngày thiếu số liệu", "Days without enough data"),
    "verdict": ("Kết luận tháng", "Month verdict"),
    "rolling": ("Ngày vượt theo TB trượt 24 giờ (như cảnh báo)", "Days over on rolling 24 h mean (as alerts)"),
    "worst": ("Giá trị xấu nhất", "Worst value"),
    "station_id": ("Mã trạm", "Station id"),
    "rule_id": ("Mã quy tắc", "Rule id"),
    "unverified_col": ("Chưa đối chiếu", "Unverified"),
    "pack_id": ("Bộ quy tắc", "Rule pack"),
    "digest": ("Mã băm SHA-256", "SHA-256 digest"),
    "station": ("Trạm", "Station"),
    "kind": ("Loại trạm", "Station kind"),
    "parameter": ("Thông số", "Parameter"),
    "unit": ("Đơn vị", "Unit"),
    "regulation": ("Quy chuẩn", "Regulation"),
    "table": ("Bảng", "Table"),
    "column": ("Cột / giới hạn", "Column / limit"),
    "averaging": ("Thời gian trung bình", "Averaging period"),
    "limit": ("Giới hạn", "Limit"),
    "readings": ("Số giá trị", "Readings"),
    "expected": ("Số dự kiến", "Expected"),
    "completeness": ("Đầy đủ (%)", "Completeness (%)"),
    "judged": ("Số lần đánh giá", "Judged"),
    "within": ("Đạt (% thời gian)", "Within (% of time)"),
    "episodes": ("Số đợt vượt", "Episodes"),
    "outside_h": ("Thời gian vượt (giờ)", "Time outside (h)"),
    "peak": ("Giá trị đỉnh", "Peak"),
    "start": ("Bắt đầu", "Start"),
    "end": ("Kết thúc", "End"),
    "duration_h": ("Thời lượng (giờ)", "Duration (h)"),
    "date": ("Ngày", "Date"),
    "aqi": ("VN_AQI", "VN_AQI"),
    "level_max": ("Mực nước cao nhất (m)", "Highest level (m)"),
    "level_held": ("Mực nước cao nhất duy trì ít nhất {minutes} phút (m)", "Highest level held for {minutes} min (m)"),
    "per_station": ("Kết quả theo trạm và thông số", "Results per station and parameter"),
    "episode_list": ("Các đợt vượt giới hạn", "Exceedance episodes"),
    "aqi_calendar": ("Lịch VN_AQI theo ngày", "Daily VN_AQI calendar"),
    "completeness_map": ("Mức đầy đủ số liệu theo ngày (%)", "Data completeness per day (%)"),
    "timeseries": ("Diễn biến theo giờ (trung bình, thấp nhất–cao nhất) và giới hạn",
                   "Hourly course (mean, min–max) and limits"),
    "flood": ("Mực nước và cấp báo động lũ", "Water level and flood alarm levels"),
    "waste": ("Thu gom rác đúng hạn", "Waste collection punctuality"),
    "hours_above": ("Giờ trên {thr} %", "Hours above {thr} %"),
    "times_above": ("Số lần", "Times"),
    "longest_h": ("Lâu nhất (giờ)", "Longest (h)"),
    "pct_above": ("% thời gian", "% of time"),
    "days_at_level": ("Số ngày đạt {level}", "Days at {level}"),
    "no_data": ("không có số liệu", "no data"),
    "not_enough": ("thiếu số liệu", "not enough data"),
    "method": ("Cách tính", "Method"),
    "method_text": (
        "Đầy đủ = số giá trị nhận được / số giá trị dự kiến theo chu kỳ đo của trạm. Giới hạn theo giá trị đo: "
        "% thời gian đạt = số giá trị đạt / số giá trị. Giới hạn trung bình (24 giờ, 1 giờ Leq): chỉ đánh giá "
        "khoảng có đủ số liệu; % = số khoảng đạt / số khoảng đánh giá. Mực nước ngày = mức cao nhất được duy trì "
        "suốt thời gian của quy tắc báo động lũ; ngày đạt báo động = ngày có mực nước vượt báo động kéo dài đủ thời "
        "gian của quy tắc, như điều kiện phát cảnh báo. "
        "Số đo lỗi cảm biến đã được loại. Ngày theo giờ {tz}.",
        "Completeness = readings received / readings expected at the station's interval. Per-reading limits: "
        "% within = readings within / readings. Averaging limits (24 h, 1 h Leq): only windows with enough data "
        "are judged; % = windows within / windows judged. Daily water level = the highest level held for the flood "
        "rule's duration; alarm days are days with a breach of the level held for the rule's duration, as an alert "
        "fires. Sensor faults are removed. "
        "Days are local days ({tz})."),
    "more_episodes": ("… và {n} đợt khác (xem CSV/HTML)", "… and {n} more (see CSV/HTML)"),
    "page": ("Trang", "Page"),
}


def t(key: str, lang: str, **kw: object) -> str:
    vi, en = TEXTS[key]
    text = vi if lang == "vi" else en
    return text.format(**kw) if kw else text


def metric_label(metric: str, lang: str) -> str:
    m = METRICS.get(metric)
    label = m.label(lang) if m else metric
    # Vietnamese regulations write the particle size with a decimal comma (QCVN 05:2023: "PM2,5")
    return label.replace("PM2.5", "PM2,5") if lang == "vi" else label


def metric_unit(metric: str) -> str:
    m = METRICS.get(metric)
    return m.unit if m else ""


def kind_label(kind: str, lang: str) -> str:
    vi, en = STATION_KINDS.get(kind, (kind, kind))
    return vi if lang == "vi" else en


def pct(value: float | None, lang: str, decimals: int = 1) -> str:
    return percent(value, decimals, lang)


def num(value: float | None, lang: str, decimals: int = 1) -> str:
    """Vietnamese writes a decimal comma (12,5); English a decimal point; rounding half-up
    (villagewatch.textfmt); trailing zeros kept so a column of numbers lines up."""
    return number(value, decimals, lang, fixed=True)


def qty(value: float | None, unit: str, lang: str, decimals: int = 2) -> str:
    """A value with its unit: "0,2 mg/L", "1,9 m", "95,6 %"."""
    return quantity(value, unit, decimals, lang)


def hours_text(hours: float, lang: str) -> str:
    return quantity(hours, "giờ" if lang == "vi" else "h", 1, lang)


VARIANT_LABELS: dict[str, tuple[str, str]] = {
    # rule-pack variant ids as a reader names them (ids never reach a Vietnamese text)
    "cao-lanh": ("Cao Lãnh", "Cao Lanh"), "truong-xuan": ("Trường Xuân", "Truong Xuan"),
    "tan-chau": ("Tân Châu", "Tan Chau"), "chau-doc": ("Châu Đốc", "Chau Doc"),
    "special": ("đặc biệt", "special"), "common": ("thông thường", "common"),
}


def variant_label(variant: str | None, lang: str) -> str:
    if not variant:
        return ""
    vi, en = VARIANT_LABELS.get(variant, (variant, variant))
    return vi if lang == "vi" else en
