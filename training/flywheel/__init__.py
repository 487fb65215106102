"""The data flywheel: collected frames -> Ground Truth streaming labels -> training job -> gate -> new version.

`settings` (one YAML/JSON document shared by every step), `labeling` (``edge-app label setup``), `cli`.
The bundling Lambda is `training.lambda_bundle`, the gate `training.gate`, label statistics
`training.label_stats`.
"""
