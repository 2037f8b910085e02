"""Every string an operator reads on a dashboard: Vietnamese first (with diacritics), English second."""

from __future__ import annotations

LANGS = ("vi", "en")

TEXTS: dict[str, tuple[str, str]] = {
    # dashboards
    "overview": ("Tổng quan", "Overview"),
    "water": ("Nước", "Water"),
    "air": ("Không khí và thời tiết", "Air and weather"),
    "waste": ("Rác thải", "Waste"),
    "flood": ("Lũ lụt", "Flood"),
    "devices": ("Thiết bị", "Devices"),
    # variables
    "var_commune": ("Xã", "Commune"),
    "var_station": ("Trạm", "Station"),
    # overview
    "map": ("Bản đồ trạm quan trắc", "Station map"),
    "map_desc": ("Màu theo trạng thái: xanh bình thường, vàng cảnh báo, đỏ báo động, xám mất kết nối "
                 "(trạng thái do bộ cảnh báo xác định).",
                 "Colour by state: green ok, yellow warning, red alarm, grey offline "
                 "(state decided by the alert engine)."),
    "state_ok": ("Bình thường", "OK"),
    "state_warning": ("Cảnh báo", "Warning"),
    "state_alarm": ("Báo động", "Alarm"),
    "state_offline": ("Mất kết nối", "Offline"),
    "latest": ("Giá trị mới nhất so với giới hạn", "Latest values against limits"),
    "active_alerts": ("Cảnh báo đang hoạt động", "Active alerts"),
    "completeness": ("Độ đầy đủ dữ liệu hôm nay", "Today's data completeness"),
    "completeness_desc": ("Số bản tin nhận được hôm nay so với số bản tin dự kiến theo chu kỳ đo của trạm.",
                          "Messages received today against the number expected from the station interval."),
    # water
    "supply": ("Nước sinh hoạt — đầu ra nhà máy", "Water supply — plant outlet"),
    "rivers": ("Sông, kênh rạch", "Rivers and canals"),
    "ponds": ("Ao nuôi thủy sản", "Aquaculture ponds"),
    "do_min_note": ("Giá trị nhỏ nhất mỗi khoảng để thấy rõ mức oxy thấp ban đêm, trước bình minh.",
                    "Minimum per interval so the night-time, pre-dawn oxygen low stays visible."),
    "class": ("loại", "class"),
    # air
    "aqi_bands": ("Màu theo thang VN_AQI", "Colours by VN_AQI band"),
    "noise_limits": ("Đường giới hạn ban ngày (từ 6 giờ đến 21 giờ) và ban đêm (từ 21 giờ đến 6 giờ)",
                     "Day (06–21 h) and night (21–06 h) limit lines"),
    "rain_hourly": ("Lượng mưa theo giờ", "Hourly rainfall"),
    # waste
    "fill_now": ("Mức đầy hiện tại", "Fill now"),
    "time_to_full": ("Ước tính thời gian đến khi đầy", "Estimated time to full"),
    "time_to_full_desc": ("Theo tốc độ đầy trung bình 6 giờ qua.", "From the average fill rate over the last 6 hours."),
    "collect_now": ("Cần thu gom ngay", "Collect now"),
    "fill_history": ("Mức đầy theo thời gian", "Fill over time"),
    # flood
    "flood_levels": ("Mực nước và các cấp báo động lũ I/II/III", "River level and flood alarm levels I/II/III"),
    # devices
    "last_seen": ("Lần cuối nhận dữ liệu", "Last seen"),
    "battery": ("Điện áp pin", "Battery voltage"),
    "rssi": ("Cường độ tín hiệu", "Signal strength"),
    "queue_depth": ("Hàng đợi tại cổng kết nối", "Gateway queue depth"),
    "dropped": ("Bản tin bị bỏ tại cổng kết nối", "Messages dropped at the gateway"),
    "ingest_rate": ("Tốc độ nhận dữ liệu (bản tin/phút)", "Ingest rate (messages/min)"),
    "ingest_rejects": ("Bản tin bị từ chối (bản tin/phút)", "Rejected messages (messages/min)"),
    # columns and annotations
    "col_station": ("Trạm", "Station"),
    "col_rule": ("Quy tắc", "Rule"),
    "col_severity": ("Mức độ", "Severity"),
    "col_message": ("Nội dung", "Message"),
    "col_value": ("Giá trị", "Value"),
    "col_state": ("Trạng thái", "State"),
    "annotation_alerts": ("Chuyển trạng thái cảnh báo", "Alert transitions"),
    "folder_suffix_en": ("", " (English)"),
    "hours": ("giờ", "hours"),
    "h24": ("24 giờ", "24 h"),
    "col_time": ("Thời điểm", "Time"),
    "basemap": ("Bản đồ nền", "Basemap"),
    "received": ("Nhận được", "Received"),
    "written": ("Đã ghi", "Written"),
    "rejected": ("Bị từ chối", "Rejected"),
    "messages": ("bản tin", "messages"),
    "messages_per_min": ("bản tin/phút", "messages/min"),
    "all": ("Tất cả", "All"),
    "rule_stale": ("Mất tín hiệu", "Silent station"),
    "rule_gateway_offline": ("Cổng kết nối mất kết nối", "Gateway offline"),
    "rule_flatline": ("số đo không đổi", "stuck reading"),
}


def t(key: str, lang: str) -> str:
    vi, en = TEXTS[key]
    return vi if lang == "vi" else en
