"""Static HTML reports people open first: captions beside their images, training curves, activity
confusion and video-description segments. One self-contained page per report (inline CSS, script,
images and plots), readable offline.

- ``captions.write_caption_report``: captioning results (``captionkit evaluate`` / ``report CAPTIONS``)
- ``run.write_run_report``: a training run folder (``log.jsonl`` + checkpoint config)
- ``video.write_activity_report`` / ``video.write_describe_report``: activity and video description
- ``evaluation.write_evaluation_report``: the page ``captionkit evaluate`` writes next to its files
"""
