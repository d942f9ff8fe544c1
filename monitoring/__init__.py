"""Drift monitoring of new music: batch scoring with the registry champion, Evidently drift reports
against the GTZAN training distribution, and an Evidently workspace of dashboards."""
