"""The campaign (layer 7): a resolved configuration, idempotent stages, their runner, and the static
HTML report built only from what the stages wrote (:mod:`potforge.campaign.report`)."""
