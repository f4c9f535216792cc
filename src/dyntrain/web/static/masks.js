/* The mask editor (segmentation projects): data page, add photos, try page. */
