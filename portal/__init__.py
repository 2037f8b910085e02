"""The commune's portal (issue 15): map, live stations and residents' feedback, Vietnamese first."""
