"""The lab: the whole product on one machine (Kamailio, rtpengine, a worker, an SMTP
catcher) for demos and for trying phones against it."""
