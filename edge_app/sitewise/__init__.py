"""AWS IoT SiteWise: property aliases, TQV messages, IoT rules, asset models, direct ingestion."""
