"""Edge computer vision for packaging lines: tray counting, anomaly inspection, MQTT/SiteWise publishing."""

__version__ = "0.1.0"
