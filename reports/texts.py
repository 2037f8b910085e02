"""Words of the report, Vietnamese first (with diacritics), English second."""

from __future__ import annotations

from villagewatch.contract import METRICS
from villagewatch.sites import STATION_KINDS

TEXTS: dict[str, tuple[str, str]] = {
    "title": ("Báo cáo quan trắc môi trường tháng {month}", "Environmental monitoring report, {month}"),
    "commune": ("Xã", "Commune"),
    "province": ("Tỉnh", "Province"),
    "generated": ("Lập lúc {at} (giờ địa phương) bởi villagewatch", "Generated {at} (local time) by villagewatch"),
    "summary": ("Tóm tắt", "Summary"),
    "data_ok": ("Đã nhận {pct} số liệu dự kiến từ {n} trạm.", "{pct} of expected readings received from {n} stations."),
    "data_low": ("Trạm thiếu số liệu (dưới 90 %): {names}.", "Stations missing data (below 90 %): {names}."),
    "all_within": ("{kind}: đạt giới hạn cho phép suốt tháng.", "{kind}: within limits all month."),
    "exceed": ("{kind}: {param} vượt giới hạn tại {station} ({within} thời gian đạt, {n} đợt, dài nhất {longest}).",
               "{kind}: {param} outside its limit at {station} ({within} of time within, {n} episode(s), longest {longest})."),
    "also_outside": ("Cũng vượt: {items}.", "Also outside: {items}."),
    "aqi_line": ("Không khí (VN_AQI ngày) tại {station}: {bands}.", "Air (daily VN_AQI) at {station}: {bands}."),
    "flood_line": ("Lũ tại {station}: đỉnh {peak} m ngày {day}; số ngày đạt báo động I/II/III: {days}.",
                   "Flood at {station}: peak {peak} m on {day}; days at alarm level I/II/III: {days}."),
    "waste_line": ("Rác tại {station}: thùng trên {thr} % tổng {hours} giờ, {n} lần, lâu nhất {longest} giờ.",
                   "Waste at {station}: bin above {thr} % for {hours} h in total, {n} time(s), longest {longest} h."),
    "waste_ok": ("Rác: không thùng nào vượt {thr} %.", "Waste: no bin above {thr} %."),
    "versions": ("Quy chuẩn và bộ quy tắc đã dùng", "Regulations and rule packs used"),
    "unverified": ("Giới hạn đánh dấu * chưa được đối chiếu văn bản gốc.", "Limits marked * are not yet checked against the official text."),
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
        "suốt thời gian của quy tắc báo động lũ (một giá trị đột biến không tạo ra ngày báo động). "
        "Chưa loại giá trị lỗi cảm biến. Ngày theo giờ {tz}.",
        "Completeness = readings received / readings expected at the station's interval. Per-reading limits: "
        "% within = readings within / readings. Averaging limits (24 h, 1 h Leq): only windows with enough data "
        "are judged; % = windows within / windows judged. Daily water level = the highest level held for the flood "
        "rule's duration (a single spike makes no alarm day). Sensor faults are not removed yet. "
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
    return m.label(lang) if m else metric


def metric_unit(metric: str) -> str:
    m = METRICS.get(metric)
    return m.unit if m else ""


def kind_label(kind: str, lang: str) -> str:
    vi, en = STATION_KINDS.get(kind, (kind, kind))
    return vi if lang == "vi" else en


def pct(value: float | None, lang: str, decimals: int = 1) -> str:
    if value is None:
        return "—"
    return num(value, lang, decimals) + " %"


def num(value: float | None, lang: str, decimals: int = 1) -> str:
    """Vietnamese writes a decimal comma (12,5); English a decimal point."""
    if value is None:
        return "—"
    text = f"{value:.{decimals}f}"
    return text.replace(".", ",") if lang == "vi" else text
