"""The fine lifecycle on the server: fines from synced protocols and imports, the daily run that takes their
steps, notifications (SMS, post, publication), hand-over to the bailiff, payments from providers and their
reconciliation, the unpaid look-up and its device dataset, and the back-office pages. Rules live in
``core.fines``; each module here has one job, named by its file.
"""
