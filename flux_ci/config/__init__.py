"""Configuration: the one `Settings` object (`settings`) with its value forms (`values`), CI defaults
(`ci`) and variable names (`names`); what each command needs, checked before anything runs (`plan`,
`signing`, `rollout`); and what the artifact will hold (`manifests`, `ignore`). Imports
`report.models` and the ground floor only."""
