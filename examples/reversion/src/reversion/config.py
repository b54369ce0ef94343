import datetime as dt

import yaml


def load_config(path="configs/train.yaml"):
    with open(path) as f:
        cfg = yaml.safe_load(f)
    # yaml turns unquoted dates into datetime.date, we want plain strings everywhere
    for split in cfg.get("splits", {}).values():
        for k, v in split.items():
            if isinstance(v, dt.date):
                split[k] = v.isoformat()
    return cfg
