"""Learning offline: `training` (loops over labelled datasets), `augment` (stream crops and crossings),
`datadefaults` (what `train` chooses from the data), `streameval` (a labelled split scored as one stream)."""
